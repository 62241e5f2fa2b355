"""The outbox and its delivery, with real parts: a real SMTP server (aiosmtpd), a real
HTTP receiver that verifies signatures and counts deliveries by idempotency key,
real worker processes (one killed with SIGKILL, two claiming side by side), on
SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from anyio.from_thread import start_blocking_portal
from sqlalchemy import Engine
from typer.testing import CliRunner

from leadgate.cli import app as cli
from leadgate.notify.email import parse_smtp_url
from leadgate.notify.webhook import SignatureError, signature_header, verify_signature
from leadgate.notify.worker import WorkerConfig, backoff, deliver_due, run_worker
from leadgate.services import outbox as uc
from leadgate.store import create_engine, upgrade
from leadgate.store.outbox_store import OutboxStore
from leadgate.store.repository import Repository
from leadgate.web.app import create_app
from leadgate.web.settings import Settings
from test_store import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)

SECRET = "whsec_test_0123456789"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    key: str
    event: str | None
    body: dict[str, Any]
    status: int


class Receiver:
    """A real HTTP server for webhooks and chat messages. It verifies the signature of
    every signed request, answers ``status`` (or 500 on the first request of each key
    when ``fail_first``), waits ``delay`` s on the first ``slow_first`` requests, and
    keeps every request it saw."""

    def __init__(self, secret: str = SECRET, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.lock = threading.Lock()
        self.seen: list[Received] = []
        self.status = 200
        self.fail_first = False
        self.delay = 0.0
        self.slow_first = 0
        self.started = threading.Event()  # set when the first request comes in
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answer at once (no 40 ms delayed-ACK stall)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.started.set()
                status = receiver.answer(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def answer(self, headers: Any, body: bytes) -> int:
        key = headers.get("Idempotency-Key") or ""
        with self.lock:
            slow = len(self.seen) < self.slow_first
            first = all(r.key != key for r in self.seen)
            status = self.status
            if headers.get("Leadgate-Signature") is not None:
                try:
                    verify_signature(self.secret, headers["Leadgate-Signature"], body)
                except SignatureError:
                    status = 401
            if self.fail_first and first:
                status = 500
            self.seen.append(
                Received(key, headers.get("Leadgate-Event"), orjson.loads(body), status)
            )
        if slow:
            time.sleep(self.delay)
        return status

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def accepted(self) -> Counter[str]:
        """Deliveries answered 2xx, by idempotency key."""
        with self.lock:
            return Counter(r.key for r in self.seen if 200 <= r.status < 300)

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(r.key for r in self.seen)


class Mailbox:
    """aiosmtpd handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, str]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, f"smtp://127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:  # noqa: F811
    upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def fast(**kw: Any) -> WorkerConfig:
    """A worker that retries after a second or two, for tests that move time on."""
    values: dict[str, Any] = {"base_delay": 1.0, "max_delay": 60.0, "timeout": 2.0}
    values["lease_seconds"] = 5.0
    values["smtp"] = None
    values.update(kw)
    return WorkerConfig(**values)


def subscribe(engine: Engine, url: str, events: list[str] | None = None) -> int:
    with engine.begin() as conn:
        sub = uc.add_subscription(conn, url, SECRET, events or list(uc.EVENTS), T0)
    return sub.id


def publish_many(engine: Engine, n: int, event: str = "lead.sql") -> None:
    with engine.begin() as conn:
        for i in range(n):
            uc.publish(conn, event, {"lead_id": f"L{i}", "score": i}, f"{event}:L{i}", T0)


def stored_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {m.idempotency_key for m in OutboxStore(conn).messages(limit=100_000)}


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return OutboxStore(conn).counts()


# Signatures, backoff, settings: no database


def test_signature_verifies_and_refuses_tampering_wrong_secret_replay_and_garbage() -> None:
    body = b'{"type":"lead.sql"}'
    now = 1_800_000_000
    header = signature_header(SECRET, body, now)
    assert verify_signature(SECRET, header, body, now=now + 10) == now
    rotated = f"{header},v1={'0' * 64}"  # a second signature (old secret) is allowed
    assert verify_signature(SECRET, rotated, body, now=now) == now
    refused = [
        (SECRET, header, body + b" ", now),  # body changed
        ("other-secret", header, body, now),  # wrong secret
        (SECRET, header, body, now + 301),  # too old: a replay
        (SECRET, None, body, now),
        (SECRET, "v1=abc", body, now),
        (SECRET, f"t={now}", body, now),
        (SECRET, "t=soon,v1=abc", body, now),
        (SECRET, "garbage", body, now),
    ]
    for secret, bad, payload, at in refused:
        with pytest.raises(SignatureError):
            verify_signature(secret, bad, payload, now=at)


def test_backoff_doubles_from_ten_seconds_with_jitter_and_caps_at_an_hour() -> None:
    config = WorkerConfig(smtp=None)
    for attempt, nominal in [(1, 10), (2, 20), (3, 40), (4, 80), (9, 2560), (10, 3600), (30, 3600)]:
        for _ in range(50):
            wait = backoff(attempt, config)
            assert nominal * 0.8 <= wait <= min(nominal * 1.2, 3600)


def test_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:8025")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("127.0.0.1", 8025, False, None)
    tls = parse_smtp_url("smtps://bot%40x.io:p%3Ass@mail.x.io")
    assert (tls.port, tls.tls, tls.username, tls.password) == (465, True, "bot@x.io", "p:ss")
    assert parse_smtp_url("smtp://m.x.io?starttls=true").starttls
    for bad in ("http://x", "smtp://", "smtp://h:port"):
        with pytest.raises(ValueError):
            parse_smtp_url(bad)


# Subscriptions and publishing


def test_subscriptions_are_validated_listed_and_removed(engine: Engine) -> None:
    with engine.begin() as conn:
        for url, secret, events in [
            ("ftp://x.io/hook", SECRET, ["lead.sql"]),
            ("/relative", SECRET, ["lead.sql"]),
            ("https://x.io/hook", "", ["lead.sql"]),
            ("https://x.io/hook", SECRET, ["lead.sqlx"]),
            ("https://x.io/hook", SECRET, []),
        ]:
            with pytest.raises(uc.InvalidSubscription):
                uc.add_subscription(conn, url, secret, events, T0)
        a = uc.add_subscription(conn, "https://a.io/h", SECRET, ["lead.sql", "lead.sql"], T0)
        b = uc.add_subscription(conn, "http://b.io/h", SECRET, ["handover.assigned"], T0)
    assert a.events == ("lead.sql",)
    assert SECRET not in repr(a)
    with engine.begin() as conn:
        assert [s.id for s in uc.list_subscriptions(conn)] == [a.id, b.id]
        assert uc.remove_subscription(conn, a.id) is True
        assert uc.remove_subscription(conn, a.id) is False
        assert [s.id for s in uc.list_subscriptions(conn)] == [b.id]


def test_publish_writes_one_message_per_interested_subscription_once_per_key(
    engine: Engine,
) -> None:
    wants = subscribe(engine, "https://a.io/h", ["lead.sql", "lead.mql"])
    subscribe(engine, "https://b.io/h", ["handover.assigned"])
    with engine.begin() as conn:
        assert uc.publish(conn, "lead.sql", {"lead_id": "L1"}, "lead.sql:L1:1", T0) == 1
        assert uc.publish(conn, "lead.sql", {"lead_id": "L1"}, "lead.sql:L1:1", T0) == 0
        assert uc.notify_email(conn, "rep@x.io", "S", "t", None, "k1", T0) is True
        assert uc.notify_email(conn, "rep@x.io", "S", "t", None, "k1", T0) is False
        assert uc.notify_chat(conn, "https://hooks.x.io/T/B/s3cret", "hi", None, "k1", T0)
        with pytest.raises(ValueError):
            uc.publish(conn, "lead.unknown", {}, "k2", T0)
        with pytest.raises(TypeError):
            uc.publish(conn, "lead.sql", {"at": T0}, "k3", T0)
    # A transaction that rolls back leaves no notification behind.
    with pytest.raises(RuntimeError), engine.begin() as conn:
        uc.publish(conn, "lead.sql", {"lead_id": "L2"}, "lead.sql:L2:1", T0)
        raise RuntimeError("the stage change failed")
    with engine.connect() as conn:
        messages = OutboxStore(conn).messages()
    assert [(m.channel, m.event) for m in messages] == [
        ("webhook", "lead.sql"),
        ("email", "email"),
        ("chat", "chat"),
    ]
    hook = messages[0]
    assert hook.subscription_id == wants
    assert hook.payload["type"] == "lead.sql" and hook.payload["id"] == hook.idempotency_key
    assert "s3cret" not in messages[2].idempotency_key  # a chat URL is a secret


# Delivery through the real channels


def test_webhook_email_and_chat_arrive_signed_and_formatted(
    engine: Engine, receiver: Receiver, smtp: tuple[Mailbox, str]
) -> None:
    mailbox, smtp_url = smtp
    subscribe(engine, receiver.url, ["handover.assigned"])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Ann* is ready"}}]
    with engine.begin() as conn:
        uc.publish(conn, "handover.assigned", {"handover_id": 7}, "handover:7", T0)
        uc.notify_email(
            conn, "rep@x.io", "Lead for you: Ann", "Ann is ready.", "<p>Ann is ready.</p>",
            "handover:7", T0,
        )  # fmt: skip
        uc.notify_chat(conn, receiver.url, "Ann is ready", blocks, "handover:7", T0)
    config = fast(smtp=parse_smtp_url(smtp_url), mail_from="leadgate@agency.test")
    report = deliver_due(engine, limit=10, config=config)
    assert (report.claimed, report.delivered, report.retrying, report.dead) == (3, 3, 0, 0)
    hooks = [r for r in receiver.seen if r.event == "handover.assigned"]
    assert len(hooks) == 1 and hooks[0].status == 200
    assert hooks[0].body["data"] == {"handover_id": 7} and hooks[0].body["id"] == hooks[0].key
    chats = [r for r in receiver.seen if r.event is None]
    assert len(chats) == 1 and chats[0].body == {"text": "Ann is ready", "blocks": blocks}
    (mail,) = mailbox.messages
    assert mail["To"] == "rep@x.io" and mail["From"] == "leadgate@agency.test"
    assert mail["Subject"] == "Lead for you: Ann"
    assert mail["Leadgate-Idempotency-Key"] == "handover:7:email:rep@x.io"
    assert mail["Message-ID"].endswith("@leadgate>")
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert "Ann is ready." in text.get_content() and "<p>" in html.get_content()
    assert statuses(engine) == {"pending": 0, "delivered": 3, "dead": 0}
    assert deliver_due(engine, config=config).claimed == 0  # nothing is sent twice


def test_receiver_down_then_back_gets_every_notification_once_by_key(engine: Engine) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    subscribe(engine, receiver.url)
    publish_many(engine, 40)
    config = fast()
    down = deliver_due(engine, now=T0, limit=100, config=config)
    assert (down.claimed, down.retrying) == (40, 40)
    assert "ConnectError" in down.errors[0]
    assert deliver_due(engine, now=T0 + timedelta(seconds=0.5), config=config).claimed == 0
    receiver.fail_first = True  # back, but every first try of a key answers 500
    receiver.start()
    try:
        later = T0 + timedelta(minutes=1)
        for step in range(10):
            deliver_due(engine, now=later + timedelta(minutes=step), config=config)
        assert statuses(engine) == {"pending": 0, "delivered": 40, "dead": 0}
        accepted = receiver.accepted()
        assert set(accepted) == stored_keys(engine)
        assert set(accepted.values()) == {1}  # each exactly once after de-duplication
        assert set(receiver.keys().values()) == {2}  # the 500 and the repeat, same key
    finally:
        receiver.stop()


def test_dead_after_max_attempts_then_redriven_from_the_cli(
    engine: Engine,
    db_url: str,  # noqa: F811
    receiver: Receiver,
) -> None:
    subscribe(engine, receiver.url)
    publish_many(engine, 3)
    receiver.status = 503
    config = fast(max_attempts=3)
    for step in range(5):
        deliver_due(engine, now=T0 + timedelta(hours=step), config=config)
    assert statuses(engine) == {"pending": 0, "delivered": 0, "dead": 3}
    assert len(receiver.seen) == 9  # three attempts each
    listed = runner.invoke(cli, ["outbox", "list", "--status", "dead", "--database-url", db_url])
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[1], r[4], r[6]) for r in rows] == [("dead", "3", "HTTP 503: ok")] * 3
    first_id = rows[0][0]

    receiver.status = 200
    one = runner.invoke(cli, ["outbox", "redrive", first_id, "--database-url", db_url])
    assert one.exit_code == 0 and "1 dead message back" in one.stdout
    deliver_due(engine, config=config)
    assert statuses(engine) == {"pending": 0, "delivered": 1, "dead": 2}
    rest = runner.invoke(cli, ["outbox", "redrive", "--all-dead", "--database-url", db_url])
    assert rest.exit_code == 0 and "2 dead messages back" in rest.stdout
    deliver_due(engine, config=config)
    assert statuses(engine) == {"pending": 0, "delivered": 3, "dead": 0}
    assert set(receiver.accepted()) == stored_keys(engine)  # the same keys as before
    nothing = runner.invoke(cli, ["outbox", "redrive", "--database-url", db_url])
    assert nothing.exit_code == 2


def test_delivered_messages_are_purged_after_their_keep_time_and_no_others(
    engine: Engine,
    db_url: str,  # noqa: F811
    receiver: Receiver,
) -> None:
    from leadgate.adapters.model_source import read_model
    from leadgate.services.upkeep import upkeep

    subscribe(engine, receiver.url)
    publish_many(engine, 4)
    now = datetime.now(UTC)
    deliver_due(engine, now=now, limit=2, config=fast())  # two delivered now, two pending
    assert statuses(engine) == {"pending": 2, "delivered": 2, "dead": 0}
    kept = runner.invoke(cli, ["outbox", "purge", "--database-url", db_url])
    assert kept.exit_code == 0 and "deleted 0 delivered messages" in kept.stdout
    bad = runner.invoke(cli, ["outbox", "purge", "--older-than", "soon", "--database-url", db_url])
    assert bad.exit_code == 2 and "--older-than" in bad.output
    # the periodic work keeps 30 days: 29 days on nothing goes, at 31 days both do
    model = read_model()
    assert upkeep(engine, model, now=now + timedelta(days=29))[1] == 0
    assert upkeep(engine, model, now=now + timedelta(days=31))[1] == 2
    assert statuses(engine) == {"pending": 2, "delivered": 0, "dead": 0}
    deliver_due(engine, now=now - timedelta(seconds=5), limit=2, config=fast())
    gone = runner.invoke(cli, ["outbox", "purge", "--older-than", "1s", "--database-url", db_url])
    assert gone.exit_code == 0 and "deleted 2 delivered messages" in gone.stdout, gone.output


def test_messages_to_a_removed_subscription_die_without_being_sent(
    engine: Engine, receiver: Receiver
) -> None:
    sub = subscribe(engine, receiver.url)
    publish_many(engine, 2)
    with engine.begin() as conn:
        uc.remove_subscription(conn, sub)
    report = deliver_due(engine, config=fast())
    assert report.dead == 2 and receiver.seen == []
    assert "was removed" in report.errors[0]


def test_email_without_an_smtp_server_waits_and_says_why(engine: Engine) -> None:
    with engine.begin() as conn:
        uc.notify_email(conn, "rep@x.io", "S", "t", None, "k", T0)
    report = deliver_due(engine, config=fast())
    assert report.retrying == 1 and "LEADGATE_SMTP_URL" in report.errors[0]


def test_a_message_whose_workers_keep_dying_is_given_up(engine: Engine, receiver: Receiver) -> None:
    subscribe(engine, receiver.url)
    publish_many(engine, 1)
    config = fast(max_attempts=3)
    for crash in range(3):  # claimed, then the worker dies before recording anything
        at = T0 + timedelta(minutes=crash)
        with engine.begin() as conn:
            assert len(OutboxStore(conn).claim("doomed", at, at + timedelta(seconds=5), 10)) == 1
    report = deliver_due(engine, now=T0 + timedelta(hours=1), config=config)
    assert report.dead == 1 and "without an outcome" in report.errors[0]
    assert receiver.seen == []


def test_run_worker_does_its_periodic_work_and_stops_when_told(
    engine: Engine, receiver: Receiver
) -> None:
    subscribe(engine, receiver.url)
    publish_many(engine, 5)
    stop = threading.Event()
    ticks: list[float] = []
    thread = threading.Thread(
        target=run_worker,
        args=(engine, stop, 0.01, fast()),
        kwargs={"periodic": lambda: ticks.append(time.monotonic()), "periodic_seconds": 0.05},
    )
    thread.start()
    deadline = time.monotonic() + 10
    while (len(receiver.accepted()) < 5 or len(ticks) < 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert len(receiver.accepted()) == 5 and len(ticks) >= 3


# Worker processes

WORKER = """
import sys, threading
from leadgate.notify.worker import WorkerConfig, run_worker
from leadgate.store import create_engine
config = WorkerConfig(lease_seconds=3.0, timeout=2.0, base_delay=0.5, smtp=None)
run_worker(create_engine(sys.argv[1]), threading.Event(), 0.05, config, limit=5)
"""


def test_a_worker_killed_during_delivery_loses_nothing_and_repeats_with_the_same_key(
    engine: Engine,
    db_url: str,  # noqa: F811
) -> None:
    receiver = Receiver()
    receiver.slow_first, receiver.delay = 5, 1.5  # the first batch hangs in the receiver
    receiver.start()
    try:
        subscribe(engine, receiver.url)
        publish_many(engine, 20)
        child = subprocess.Popen([sys.executable, "-c", WORKER, db_url])
        try:
            assert receiver.started.wait(30), "the worker never sent anything"
            time.sleep(0.2)
            os.kill(child.pid, signal.SIGKILL)  # mid-delivery: answers not yet read
        finally:
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        in_flight = set(receiver.keys())
        assert in_flight and statuses(engine)["delivered"] < 20
        # A new worker, once the dead one's lease has run out, delivers everything.
        after = datetime.now(UTC) + timedelta(seconds=10)
        for step in range(5):
            deliver_due(engine, now=after + timedelta(seconds=step), config=fast())
        assert statuses(engine) == {"pending": 0, "delivered": 20, "dead": 0}
        keys = receiver.keys()
        assert set(keys) == stored_keys(engine)  # nothing lost
        assert {k for k, n in keys.items() if n == 2} == in_flight  # repeats, same key
        assert set(receiver.accepted()) == stored_keys(engine)
    finally:
        receiver.stop()


def test_two_worker_processes_claim_disjoint_messages(
    engine: Engine,
    db_url: str,  # noqa: F811
) -> None:
    receiver = Receiver()
    receiver.slow_first, receiver.delay = 10_000, 0.01
    receiver.start()
    n = 300
    try:
        subscribe(engine, receiver.url)
        publish_many(engine, n)
        command = [
            str(Path(sys.executable).with_name("leadgate")), "worker", "--database-url", db_url,
            "--interval", "0.05", "--batch", "5", "--concurrency", "2",
        ]  # fmt: skip
        workers = [subprocess.Popen(command, stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while statuses(engine)["delivered"] < n and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(20)
        assert statuses(engine) == {"pending": 0, "delivered": n, "dead": 0}
        keys = receiver.keys()
        assert set(keys) == stored_keys(engine)
        assert set(keys.values()) == {1}  # no message delivered twice
        with engine.connect() as conn:
            workers_seen = {m.claimed_by for m in OutboxStore(conn).messages(limit=n)}
        assert len(workers_seen) == 2  # both took part
    finally:
        receiver.stop()


# The API and the embedded worker of `leadgate serve`


class Api:
    """httpx's async client on the app in process (ASGI transport), called from sync code."""

    def __init__(self, app: Any, portal: Any) -> None:
        self.portal = portal
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://leadgate.test"
        )

    def __call__(self, method: str, url: str, key: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response: httpx.Response = self.portal.call(
            lambda: self.client.request(method, url, headers=headers, **kw)
        )
        return response


def test_webhook_api_adds_lists_and_removes_subscriptions(db_url: str) -> None:  # noqa: F811
    app = create_app(Settings(database_url=db_url, run_worker=False))
    with app.state.engine.begin() as conn:
        _, key = Repository(conn).create_api_key("admin", T0)
        _, write_key = Repository(conn).create_api_key("write", T0)
    body = {"url": "https://crm.example/hook", "secret": SECRET, "events": ["lead.sql"]}
    with start_blocking_portal() as portal:
        call = Api(app, portal)
        assert call("POST", "/api/webhooks", None, json=body).status_code == 401
        assert call("POST", "/api/webhooks", write_key, json=body).status_code == 403
        created = call("POST", "/api/webhooks", key, json=body)
        assert created.status_code == 201, created.text
        sub = created.json()
        assert sub["url"] == body["url"] and sub["events"] == ["lead.sql"]
        assert "secret" not in sub
        for bad, parameter in [
            ({**body, "url": "ftp://x"}, "url"),
            ({**body, "events": ["lead.nope"]}, "events"),
            ({**body, "events": "lead.sql"}, "events"),
            ({**body, "secret": None}, "secret"),
            ({**body, "extra": 1}, "extra"),
            ({**body, "url": "http://[::1/hook"}, "url"),
            ({**body, "url": "https://x.io/a b"}, "url"),
            ({**body, "secret": "a\x00b"}, "secret"),
        ]:
            answer = call("POST", "/api/webhooks", key, json=bad)
            assert answer.status_code == 422, answer.text
            assert answer.json()["parameter"] == parameter
        listed = call("GET", "/api/webhooks", key).json()["items"]
        assert [s["id"] for s in listed] == [sub["id"]]
        assert call("DELETE", f"/api/webhooks/{sub['id']}", key).status_code == 200
        assert call("DELETE", f"/api/webhooks/{sub['id']}", key).status_code == 404
        assert call("DELETE", f"/api/webhooks/{2**70}", key).status_code == 404
        assert call("GET", "/api/webhooks", key).json()["items"] == []
        portal.call(call.client.aclose)
    app.state.engine.dispose()


def test_the_served_app_delivers_from_its_own_worker(
    db_url: str,  # noqa: F811
    receiver: Receiver,
) -> None:
    app = create_app(Settings(database_url=db_url, rescore_every_seconds=0))
    engine: Engine = app.state.engine
    subscribe(engine, receiver.url)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        publish_many(engine, 3, "lead.mql")
        deadline = time.monotonic() + 10
        while len(receiver.accepted()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(receiver.accepted()) == 3


def test_webhooks_cli_adds_lists_and_removes(db_url: str) -> None:  # noqa: F811
    url = ["--database-url", db_url]
    bad = runner.invoke(cli, ["webhooks", "add", "https://x.io/h", "--secret", "s",
                              "--events", "lead.sql,nope", *url])  # fmt: skip
    assert bad.exit_code == 2 and "unknown event 'nope'" in bad.output
    added = runner.invoke(cli, ["webhooks", "add", "https://x.io/h", "--secret", SECRET,
                                "--events", "lead.sql,handover.assigned", *url])  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["webhooks", "list", *url])
    assert listed.stdout.splitlines() == ["1\thttps://x.io/h\tlead.sql,handover.assigned"]
    assert SECRET not in listed.output
    assert runner.invoke(cli, ["webhooks", "remove", "1", *url]).exit_code == 0
    assert runner.invoke(cli, ["webhooks", "remove", "1", *url]).exit_code == 1


def test_adding_the_same_subscription_twice_keeps_one(db_url: str) -> None:  # noqa: F811
    from leadgate.services.outbox import add_subscription, list_subscriptions

    upgrade(db_url)
    engine = create_engine(db_url)
    try:
        at = datetime(2026, 3, 10, tzinfo=UTC)
        with engine.begin() as conn:
            first = add_subscription(conn, "http://crm.example/h", "s", ["lead.sql"], at)
            again = add_subscription(conn, "http://crm.example/h", "s", ["lead.sql"], at)
            other = add_subscription(conn, "http://crm.example/h", "s", ["lead.mql"], at)
            assert again.id == first.id and other.id != first.id
            assert len(list_subscriptions(conn)) == 2
    finally:
        engine.dispose()
