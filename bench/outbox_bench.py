"""Benchmark: outbox delivery throughput to a local webhook receiver, against an anchor.

    .venv/bin/python bench/outbox_bench.py                       # SQLite, 5 runs of 5,000
    .venv/bin/python bench/outbox_bench.py --postgres-url URL    # and PostgreSQL

Everything is measured in one run, because the machine is shared and noisy: only
ratios between figures of the same run mean much. For each run:

1. anchor: the receiver's own capacity. A plain ``httpx.Client`` (the same
   connection limits) driven by a thread pool of ``--concurrency`` threads POSTs
   the same signed bodies with the same headers, precomputed, back to back: no
   database, no signing, no bookkeeping. That is about what this receiver and this
   client library can do together on this machine;
2. outbox: a fresh database (SQLite file, or a fresh PostgreSQL schema), one
   webhook subscription to the receiver, ``--messages`` notifications written by
   ``services.outbox.publish`` in one transaction (timed apart: enqueue), then a
   worker (``notify.worker.Deliverer``, ``--concurrency`` sends at once, batches of
   ``--batch``) delivers until nothing is due: claim, sign, POST, record, as
   ``leadgate worker`` does. The receiver checks every signature and counts
   deliveries by idempotency key; the run must see every key exactly once.

The receiver is a separate process (a threaded ``http.server`` with HTTP/1.1
keep-alive that verifies ``Leadgate-Signature``), so it does not share the
worker's interpreter. Figures are medians over ``--runs`` runs; JSON goes to
bench/results/ (not in git).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, text

from leadgate.notify.webhook import signature_header, verify_signature
from leadgate.notify.worker import Deliverer, WorkerConfig
from leadgate.services import outbox as uc
from leadgate.store import create_engine, upgrade
from leadgate.store.engine import normalise_url

SECRET = "whsec_bench_0123456789abcdef"
RESULTS = Path(__file__).with_name("results")
TARGET_PER_SECOND = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_receiver(port: int, ready: Any) -> None:
    """The receiver process: verifies signatures, counts deliveries by key."""
    lock = threading.Lock()
    keys: dict[str, int] = {}
    bad = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK hold each answer ~40 ms.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                verify_signature(SECRET, self.headers.get("Leadgate-Signature"), body)
                status = 200
            except ValueError:
                status = 401
            key = self.headers.get("Idempotency-Key", "")
            with lock:
                if status == 200:
                    keys[key] = keys.get(key, 0) + 1
                else:
                    bad[0] += 1
            self._answer(status, b"ok")

        def do_GET(self) -> None:  # /stats, or /reset
            with lock:
                stats = {
                    "keys": len(keys),
                    "deliveries": sum(keys.values()),
                    "repeats": sum(n - 1 for n in keys.values()),
                    "bad_signatures": bad[0],
                }
                if self.path == "/reset":
                    keys.clear()
                    bad[0] = 0
            self._answer(200, orjson.dumps(stats))

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # listen() backlog: the default 5 resets connections

    server = Server(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def stats(base: str, reset: bool = False) -> dict[str, int]:
    answer = httpx.get(f"{base}/{'reset' if reset else 'stats'}")
    result: dict[str, int] = answer.json()
    return result


def anchor(url: str, n: int, concurrency: int) -> float:
    """Notifications a second that a plain httpx pool gets through to the receiver."""
    bodies = []
    now = int(time.time())
    for i in range(n):
        body = orjson.dumps(
            {"id": f"anchor:{i}", "type": "lead.sql", "created_at": "2026-03-02T09:30:00Z",
             "data": {"lead_id": f"L{i}", "score": i}}
        )  # fmt: skip
        headers = {
            "Content-Type": "application/json",
            "Leadgate-Signature": signature_header(SECRET, body, now),
            "Idempotency-Key": f"anchor:{i}",
            "Leadgate-Event": "lead.sql",
        }
        bodies.append((body, headers))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with (
        httpx.Client(timeout=10.0, limits=limits) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):

        def send(item: tuple[bytes, dict[str, str]]) -> int:
            return client.post(url, content=item[0], headers=item[1]).status_code

        started = time.perf_counter()
        codes = list(pool.map(send, bodies))
        seconds = time.perf_counter() - started
    assert set(codes) == {200}, set(codes)
    return n / seconds


def fresh_database(postgres_url: str | None, workdir: Path) -> tuple[str, Any]:
    """A URL of an empty database and a function that drops it."""
    if postgres_url is None:
        path = workdir / f"outbox-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: [
            p.unlink(missing_ok=True) for p in workdir.glob(f"{path.name}*")
        ]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalise_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def outbox_run(
    url: str, receiver_url: str, n: int, concurrency: int, batch: int
) -> tuple[float, float]:
    """(enqueue per second, deliveries per second) of one run on a fresh database."""
    upgrade(url)
    engine: Engine = create_engine(url)
    try:
        at = datetime.now(UTC)
        with engine.begin() as conn:
            uc.add_subscription(conn, receiver_url, SECRET, ["lead.sql"], at)
        started = time.perf_counter()
        with engine.begin() as conn:
            for i in range(n):
                data = {"lead_id": f"L{i}", "score": i}
                uc.publish(conn, "lead.sql", data, f"lead.sql:L{i}", at)
        enqueue = n / (time.perf_counter() - started)
        config = WorkerConfig(concurrency=concurrency, smtp=None)
        with Deliverer(engine, config) as deliverer:
            delivered = 0
            started = time.perf_counter()
            while True:
                report = deliverer.deliver_due(limit=batch)
                delivered += report.delivered
                if report.claimed == 0:
                    break
            seconds = time.perf_counter() - started
        assert delivered == n, f"delivered {delivered} of {n}"
        return enqueue, n / seconds
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres-url", default=os.environ.get("LEADGATE_BENCH_POSTGRES_URL"))
    args = parser.parse_args()

    port = free_port()
    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(target=serve_receiver, args=(port, ready), daemon=True)
    receiver.start()
    ready.wait(10)
    base = f"http://127.0.0.1:{port}"
    hook = f"{base}/hook"
    databases = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    runs: dict[str, list[float]] = {"anchor": []}
    for name in databases:
        runs[f"{name}_enqueue"] = []
        runs[f"{name}_deliver"] = []
    try:
        with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp:
            for run in range(args.runs):
                stats(base, reset=True)
                runs["anchor"].append(anchor(hook, args.messages, args.concurrency))
                for name in databases:
                    stats(base, reset=True)
                    url, drop = fresh_database(
                        args.postgres_url if name == "postgresql" else None, Path(tmp)
                    )
                    try:
                        enqueue, deliver = outbox_run(
                            url, hook, args.messages, args.concurrency, args.batch
                        )
                    finally:
                        drop()
                    seen = stats(base)
                    assert seen == {
                        "keys": args.messages,
                        "deliveries": args.messages,
                        "repeats": 0,
                        "bad_signatures": 0,
                    }, seen
                    runs[f"{name}_enqueue"].append(enqueue)
                    runs[f"{name}_deliver"].append(deliver)
                line = ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in runs.items())
                print(f"run {run + 1}: {line}", file=sys.stderr)
    finally:
        receiver.terminate()
        receiver.join(5)

    medians = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\nmedians of {args.runs} runs, {args.messages:,} notifications each, "
          f"concurrency {args.concurrency}, batches of {args.batch}:")  # fmt: skip
    print(f"  anchor (plain httpx pool -> receiver): {medians['anchor']:>8,.0f} /s")
    for name in databases:
        deliver = medians[f"{name}_deliver"]
        print(
            f"  outbox on {name:<10} delivered: {deliver:>8,.0f} /s "
            f"({deliver / medians['anchor']:.0%} of the anchor; target {TARGET_PER_SECOND:,}/s: "
            f"{'met' if deliver >= TARGET_PER_SECOND else 'NOT met'}); "
            f"enqueue {medians[f'{name}_enqueue']:,.0f} /s"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"outbox-{stamp}-{args.messages}.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args) | {"postgres_url": bool(args.postgres_url)},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "runs": runs,
                "medians": medians,
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
