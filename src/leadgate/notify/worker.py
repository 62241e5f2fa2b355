"""The outbox worker: claim due messages, send them concurrently, record what happened.

Delivery is at least once. A message is claimed under a lease (store/outbox_store.py);
the claim transaction commits before anything is sent, and the outcome is written
in a transaction of its own afterwards. If the worker dies in between, the lease
runs out and another worker (or the same one, restarted) sends the message again
with the same idempotency key, which receivers use to drop the repeat.

Retry policy (Stripe's): every answer other than 2xx, a timeout or a refused
connection is retried, whatever the status code (a 400 or 404 is often a
receiver's deploy in progress, and an operator can always re-drive a dead
message); redirects are not followed. Attempt n waits ``base_delay * 2**(n-1)``
seconds (10 s, 20 s, 40 s, ... by default), capped at ``max_delay`` (1 h), with
+-20% jitter so that messages that failed together are not retried in lockstep.
After ``max_attempts`` (8) attempts the message is dead, with its last error
kept; ``leadgate outbox redrive`` puts it back.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType

import httpx
import orjson
from sqlalchemy import Engine

from leadgate.notify.chat import post_chat
from leadgate.notify.email import (
    SmtpConfig,
    build_email,
    mail_from_env,
    send_email,
    smtp_from_env,
)
from leadgate.notify.webhook import DeliveryError, post_webhook
from leadgate.store.engine import transact
from leadgate.store.outbox_store import Claimed, OutboxStore, Outcome

log = logging.getLogger("leadgate.worker")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker delivers. ``lease_seconds`` must exceed the time one batch can
    take (``timeout`` bounds each send), or a slow batch is taken over and sent
    twice. ``smtp``/``mail_from`` default to ``LEADGATE_SMTP_URL`` and
    ``LEADGATE_MAIL_FROM``; without an SMTP server, emails fail (and are retried)."""

    max_attempts: int = 8
    base_delay: float = 10.0
    max_delay: float = 3600.0
    jitter: float = 0.2
    lease_seconds: float = 120.0
    concurrency: int = 32
    timeout: float = 10.0
    smtp: SmtpConfig | None = field(default_factory=smtp_from_env)
    mail_from: str = field(default_factory=mail_from_env)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.concurrency < 1 or self.timeout <= 0:
            raise ValueError("concurrency and timeout must be positive")
        if self.lease_seconds <= self.timeout:
            raise ValueError("lease_seconds must be longer than timeout")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One pass: how many messages were claimed, delivered, left to retry, dead."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = ()  # "#id: error", for the log

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.claimed + other.claimed,
            self.delivered + other.delivered,
            self.retrying + other.retrying,
            self.dead + other.dead,
            self.seconds + other.seconds,
            (self.errors + other.errors)[-20:],
        )


def default_worker_id() -> str:
    """Host, process and a random part: unique even for two workers in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def backoff(attempts: int, config: WorkerConfig, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (see the module doc)."""
    delay = min(config.base_delay * 2 ** max(attempts - 1, 0), config.max_delay)
    spread = (rng or random).uniform(-config.jitter, config.jitter)
    return float(min(delay * (1 + spread), config.max_delay))


class Deliverer:
    """A worker's long-lived parts: an HTTP connection pool and a thread pool.
    Use as a context manager, or call ``close``."""

    def __init__(
        self,
        engine: Engine,
        config: WorkerConfig | None = None,
        worker_id: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or WorkerConfig()
        self.worker_id = worker_id or default_worker_id()
        limits = httpx.Limits(
            max_connections=self.config.concurrency,
            max_keepalive_connections=self.config.concurrency,
        )
        self._own_client = client is None
        self.client = client or httpx.Client(
            timeout=self.config.timeout, limits=limits, follow_redirects=False
        )
        self.pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="outbox")
        self.rng = random.Random()

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self._own_client:
            self.client.close()

    def deliver_due(self, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
        """Claim up to ``limit`` due messages, send them, record the outcomes."""
        started = time.perf_counter()
        at = now or datetime.now(UTC)
        lease_until = at + timedelta(seconds=self.config.lease_seconds)
        claimed = transact(
            self.engine,
            lambda conn: OutboxStore(conn).claim(self.worker_id, at, lease_until, limit),
        )
        if not claimed:
            return DeliveryReport(seconds=time.perf_counter() - started)
        errors = list(self.pool.map(self._send, claimed))
        done = now or datetime.now(UTC)
        outcomes = [self._outcome(c, error, done) for c, error in zip(claimed, errors, strict=True)]
        transact(self.engine, lambda conn: OutboxStore(conn).record(outcomes, self.worker_id, done))
        return DeliveryReport(
            claimed=len(claimed),
            delivered=sum(o.status == "delivered" for o in outcomes),
            retrying=sum(o.status == "pending" for o in outcomes),
            dead=sum(o.status == "dead" for o in outcomes),
            seconds=time.perf_counter() - started,
            errors=tuple(f"#{o.id}: {o.error}" for o in outcomes if o.error)[-20:],
        )

    def _outcome(self, claimed: Claimed, error: str | None, at: datetime) -> Outcome:
        message = claimed.message
        if error is None:
            return Outcome(message.id, "delivered")
        if message.attempts >= self.config.max_attempts or error.startswith("permanent: "):
            return Outcome(message.id, "dead", error, at)
        wait = backoff(message.attempts, self.config, self.rng)
        return Outcome(message.id, "pending", error, at + timedelta(seconds=wait))

    def _send(self, claimed: Claimed) -> str | None:
        """Send one message; None when delivered, else why not. Never raises: one
        bad message must not lose the outcomes of the others in its batch."""
        message = claimed.message
        if message.attempts > self.config.max_attempts:
            # Claimed this often with no outcome recorded: its workers died (or their
            # leases ran out) while sending it. Stop before it takes down another.
            return (
                f"permanent: claimed {message.attempts} times without an outcome "
                "(workers died or ran out of lease while sending it)"
            )
        try:
            if message.channel == "webhook":
                if claimed.secret is None:
                    return f"permanent: webhook subscription {message.subscription_id} was removed"
                body = orjson.dumps(message.payload)
                post_webhook(
                    self.client,
                    message.target,
                    claimed.secret,
                    message.event,
                    message.idempotency_key,
                    body,
                )
            elif message.channel == "chat":
                post_chat(self.client, message.target, message.payload, message.idempotency_key)
            elif message.channel == "email":
                if self.config.smtp is None:
                    return "LEADGATE_SMTP_URL is not set: no SMTP server to send email through"
                p = message.payload
                email = build_email(
                    self.config.mail_from,
                    message.target,
                    str(p["subject"]),
                    str(p["text"]),
                    None if p.get("html") is None else str(p["html"]),
                    message.idempotency_key,
                )
                send_email(self.config.smtp, email, self.config.timeout)
            else:
                return f"permanent: unknown channel {message.channel!r}"
        except DeliveryError as exc:
            return str(exc)
        except Exception as exc:  # a bug or a surprise: keep it with the message, go on
            log.exception("outbox message %s failed unexpectedly", message.id)
            return f"{type(exc).__name__}: {exc}"
        return None


def deliver_due(
    engine: Engine,
    now: datetime | None = None,
    limit: int = 100,
    worker_id: str | None = None,
    config: WorkerConfig | None = None,
) -> DeliveryReport:
    """One pass over the due messages (at most ``limit``), with a short-lived
    connection and thread pool; a long-running worker uses ``run_worker``."""
    with Deliverer(engine, config, worker_id) as deliverer:
        return deliverer.deliver_due(now, limit)


def run_worker(
    engine: Engine,
    stop: threading.Event,
    interval: float = 0.5,
    config: WorkerConfig | None = None,
    worker_id: str | None = None,
    limit: int = 100,
    on_report: Callable[[DeliveryReport], None] | None = None,
    periodic: Callable[[], object] | None = None,
    periodic_seconds: float = 60.0,
) -> DeliveryReport:
    """Deliver until ``stop`` is set: batch after batch while messages are due, then
    a pause of ``interval`` seconds. A failed pass (the database away, say) is
    logged and tried again after a pause; it never ends the worker. Returns the
    totals.

    ``periodic`` (for example the detection of overdue handovers) runs first and
    then every ``periodic_seconds`` between batches; its failures are logged."""
    total = DeliveryReport()
    next_periodic = time.monotonic()
    with Deliverer(engine, config, worker_id) as deliverer:
        while not stop.is_set():
            if periodic is not None and time.monotonic() >= next_periodic:
                next_periodic = time.monotonic() + periodic_seconds
                try:
                    periodic()
                except Exception:
                    log.exception("periodic work of the worker failed")
            try:
                report = deliverer.deliver_due(limit=limit)
            except Exception:
                log.exception("outbox pass failed; trying again in %s s", max(interval, 1.0))
                stop.wait(max(interval, 1.0))
                continue
            total = total + report
            if report.claimed and on_report is not None:
                on_report(report)
            if report.claimed < limit:
                stop.wait(interval)
    return total


def start_worker_thread(
    engine: Engine,
    interval: float = 0.5,
    config: WorkerConfig | None = None,
    periodic: Callable[[], object] | None = None,
    periodic_seconds: float = 60.0,
) -> Callable[[], None]:
    """Run a worker in a daemon thread (``leadgate serve``'s embedded default);
    returns the function that stops it and waits for its batch to finish."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(engine, stop, interval, config),
        kwargs={"periodic": periodic, "periodic_seconds": periodic_seconds},
        name="outbox-worker",
        daemon=True,
    )
    thread.start()

    def stop_and_join() -> None:
        stop.set()
        thread.join()

    return stop_and_join
