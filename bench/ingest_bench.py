"""Benchmark: live ingest over HTTP, decision latency and bulk import, against an anchor.

    .venv/bin/python bench/ingest_bench.py --events 200000      # a few minutes
    .venv/bin/python bench/ingest_bench.py                      # 2,000,000 events

Everything is measured in one run, because the machine is shared and noisy: only
ratios between figures of the same run mean much. Steps:

1. generate: ``leadgate.simulation`` writes a Segment history (cached in the work
   directory) cut to exactly ``--events`` messages;
2. anchor: raw ``sqlite3`` ``executemany`` of one row per message into a table made
   from ``leadgate.store.tables.events`` (same columns, indexes and unique
   constraint; WAL, synchronous=NORMAL as leadgate runs SQLite), 10,000 rows per
   transaction. Only the inserts and commits are timed (building the rows is not),
   so the anchor is the best the database can do with these rows. Measured on the
   HTTP pool (the messages the HTTP steps may send) and on the whole file (import);
3. sustained: a real ``leadgate serve`` process on a fresh SQLite file; ``--clients``
   concurrent httpx clients post ``/v1/batch`` requests of 100 messages each, back
   to back, for ``--sustain-seconds``. The messages are the first ``--http-pool``
   of the file in time order (many leads per batch, as live traffic arrives);
4. paced: the next batches, sent open-loop at 70% of the sustained rate for
   ``--paced-seconds``; latency is from the scheduled send time to the response;
5. single: single-message calls (``/v1/track``, ``/v1/page``, ``/v1/identify`` by
   type) sent open-loop at ``--single-rate`` per second (1,000) for
   ``--single-seconds``: client-side round trip from the scheduled time. Then the
   server is stopped and the ingest use case itself is timed in this process on the
   same database, one message per transaction (``ingest`` + commit: the event, the
   score, the ledger and any stage change committed together), paced at the same
   rate: service time per message, and latency including any wait behind earlier
   messages when the use case cannot keep up with the rate;
6. import: ``leadgate import`` of the whole file into a fresh SQLite file (and into
   PostgreSQL with ``--postgres-url``), as a child process: wall time, events/s and
   peak resident memory (``os.wait4``'s rusage of that child).

Prints a table with the ratios against the targets of issue 3 and writes JSON to
bench/results/ (not in git). ``--steps`` picks steps; ``--profile`` writes cProfile
output of the ingest use case (time-ordered and file-ordered chunks) to the work
directory and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

RESULTS = Path(__file__).resolve().parent / "results"
CLI = [sys.executable, "-c", "from leadgate.cli import main; main()"]
BATCH = 100
ANCHOR_TX = 10_000
DAYS = 90
START = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=DAYS)
STEPS = ("anchor", "sustained", "paced", "single", "import")

# Targets of issue 3.
INGEST_SHARE = 0.25  # /v1/batch events/s against the anchor
INGEST_P99_MS = 100.0  # at 70% of the sustained rate
DECISION_P99_MS = 10.0  # one event to its committed score and stage, at 1,000 events/s
IMPORT_SHARE = 0.50  # bulk import events/s against the anchor


def log(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_figures(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 0.50),
        "p90_ms": pct(ms, 0.90),
        "p99_ms": pct(ms, 0.99),
        "max_ms": max(ms) if ms else float("nan"),
    }


def vm_hwm_mb(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM) in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the history --------------------------------------------------------------------


def history_file(args: argparse.Namespace) -> Path:
    """The first ``--events`` messages of a simulated history (generated once, cached)."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"events-{args.events}-{args.seed}.jsonl"
    if path.exists():
        return path
    from leadgate.simulation import main_simulate

    leads = args.events // 16 + 10  # 18-21 messages per person at 18 events per lead
    full = workdir / f"sim-{leads}-{args.seed}.jsonl"
    if not full.exists():
        log(f"simulating {leads:,} people into {full}")
        main_simulate(leads, DAYS, args.seed, full, workdir / "truth.csv", events_per_lead=18.0)
    written = 0
    tmp = path.with_suffix(".tmp")
    with full.open("rb") as src, tmp.open("wb") as dst:
        for line in src:
            if written == args.events:
                break
            dst.write(line)
            written += 1
    if written < args.events:
        raise SystemExit(f"the simulation gave only {written:,} messages")
    tmp.replace(path)
    return path


def read_lines(path: Path, limit: int) -> list[bytes]:
    out: list[bytes] = []
    with path.open("rb") as f:
        for line in f:
            if len(out) == limit:
                break
            if line.strip():
                out.append(line.rstrip(b"\n"))
    return out


def time_ordered(lines: list[bytes]) -> list[bytes]:
    """Messages in time order (ISO 8601 UTC text with the same format sorts as time)."""
    return sorted(lines, key=lambda raw: str(orjson.loads(raw).get("timestamp", "")))


# -- the anchor -----------------------------------------------------------------------


def anchor_ddl() -> list[str]:
    """CREATE TABLE and CREATE INDEX statements of leadgate's events table, for SQLite."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from leadgate.store import tables as t

    dialect = sqlite.dialect()
    ddl = [str(CreateTable(t.events).compile(dialect=dialect))]
    ddl += [str(CreateIndex(index).compile(dialect=dialect)) for index in t.events.indexes]
    return ddl


def anchor_row(raw: bytes, received: str) -> tuple[str, str, str, str, str, bytes]:
    """One message as an events row: message id, lead id, type, time, received, JSON."""
    msg = orjson.loads(raw)
    lead = msg.get("userId") or "anon:" + str(msg.get("anonymousId"))
    kind = msg.get("event") or msg.get("type") or ""
    stamp = str(msg.get("timestamp", "")).replace("T", " ").replace("Z", "")
    body = msg.get("properties") or msg.get("traits") or {}
    return str(msg.get("messageId")), str(lead), str(kind), stamp, received, orjson.dumps(body)


def run_anchor(lines: Iterable[bytes], db: Path) -> dict[str, Any]:
    """Raw executemany into a same-shaped table in 10,000-row transactions; only the
    inserts and commits are timed."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    for statement in anchor_ddl():
        con.execute(statement)
    insert = (
        "INSERT OR IGNORE INTO events (message_id, lead_id, type, at, received_at, properties) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    received = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    timed = 0.0
    rows_total = 0
    started = time.perf_counter()

    def flush(rows: list[tuple[str, str, str, str, str, bytes]]) -> float:
        t0 = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(insert, rows)
        con.execute("COMMIT")
        return time.perf_counter() - t0

    rows: list[tuple[str, str, str, str, str, bytes]] = []
    for raw in lines:
        rows.append(anchor_row(raw, received))
        if len(rows) == ANCHOR_TX:
            timed += flush(rows)
            rows_total += len(rows)
            rows = []
    if rows:
        timed += flush(rows)
        rows_total += len(rows)
    wall = time.perf_counter() - started
    stored = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    return {
        "rows": rows_total,
        "stored": stored,
        "seconds": timed,
        "wall_seconds_with_row_building": wall,
        "rows_per_s": rows_total / timed if timed else 0.0,
    }


def file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield line.rstrip(b"\n")


# -- the server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def leadgate(*argv: str) -> str:
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"leadgate {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


class Server:
    """A ``leadgate serve`` child process on ``url``, with a write key."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.key = leadgate("keys", "create", "--kind", "write", "--database-url", url)
        self.key = self.key.strip().splitlines()[-1]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), "--database-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(300):
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"leadgate serve exited: {self.proc.stderr}") from None
                time.sleep(0.1)
        raise SystemExit("leadgate serve did not start")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> float | None:
        """Stop it; its peak resident memory in MB."""
        peak = vm_hwm_mb(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still draining a backlog of requests
            log("leadgate serve did not stop within 30 s of SIGTERM; killing it")
            self.proc.kill()
            self.proc.wait(timeout=30)
        return peak


def batch_bodies(lines: list[bytes]) -> list[tuple[int, bytes]]:
    """Request bodies of 100 messages (JSON built once, outside the timed loops)."""
    out = []
    for i in range(0, len(lines), BATCH):
        part = lines[i : i + BATCH]
        out.append((len(part), b'{"batch":[' + b",".join(part) + b"]}"))
    return out


HEADERS = {"content-type": "application/json"}


async def sustained(
    server: Server, bodies: list[tuple[int, bytes]], clients: int, seconds: float
) -> dict[str, Any]:
    """Back-to-back batches from ``clients`` concurrent clients for ``seconds``."""
    next_index = 0
    accepted = sent = failures = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(
        base_url=server.base, auth=(server.key, ""), timeout=120, limits=limits
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal next_index, accepted, sent, failures
            while time.perf_counter() < deadline and next_index < len(bodies):
                count, body = bodies[next_index]
                next_index += 1
                t0 = time.perf_counter()
                answer = await client.post("/v1/batch", content=body, headers=HEADERS)
                latencies.append(time.perf_counter() - t0)
                sent += count
                if answer.status_code == 200:
                    accepted += int(answer.json()["accepted"])
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    if next_index >= len(bodies):
        log("warning: the HTTP pool ran out during the sustained step; raise --http-pool")
    return {
        "clients": clients,
        "batches": len(latencies),
        "messages": sent,
        "accepted": accepted,
        "failed_requests": failures,
        "seconds": wall,
        "events_per_s": sent / wall if wall else 0.0,
        "latency": latency_figures(latencies),
        "next_batch": next_index,
    }


async def paced(
    base: str,
    key: str,
    requests: list[tuple[str, int, bytes]],
    rate: float,
    grace: float = 20.0,
    in_flight: int = 64,
) -> dict[str, Any]:
    """Open-loop: request i is due at ``i / rate`` seconds, whatever came back before;
    latency runs from the due time to the response, so waiting to be sent counts.

    At most ``in_flight`` requests are outstanding (a pool of that many clients; more
    only queue inside httpx, whose pool then costs the client more CPU than the
    server). When the server cannot keep up, sending stops ``grace`` seconds after
    the last request was due; requests not sent or not answered by then are counted
    as unfinished, and the latency quantiles are then lower bounds."""
    latencies: list[float] = []
    messages = failures = 0
    slots = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(
        base_url=base, auth=(key, ""), timeout=120, limits=limits
    ) as client:

        async def send(path: str, count: int, body: bytes, due: float) -> None:
            nonlocal messages, failures
            try:
                answer = await client.post(path, content=body, headers=HEADERS)
            finally:
                slots.release()
            latencies.append(time.perf_counter() - due)
            messages += count
            if answer.status_code != 200:
                failures += 1

        started = time.perf_counter()
        deadline = started + len(requests) / rate + grace
        tasks = []
        for i, (path, count, body) in enumerate(requests):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(slots.acquire(), max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                break
            tasks.append(asyncio.create_task(send(path, count, body, due)))
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _done, pending = await asyncio.wait(
                tasks, timeout=max(0.0, deadline - time.perf_counter())
            )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall = time.perf_counter() - started
    return {
        "requests": len(requests),
        "messages": messages,
        "failed_requests": failures,
        "target_requests_per_s": rate,
        "in_flight": in_flight,
        "seconds": wall,
        "achieved_events_per_s": messages / wall if wall else 0.0,
        "unfinished": len(requests) - len(latencies),
        "latency": latency_figures(latencies),
    }


def single_requests(lines: list[bytes]) -> list[tuple[str, int, bytes]]:
    """One request per message, to the endpoint of its type (/v1/track, /v1/page, ...)."""
    out = []
    for raw in lines:
        kind = orjson.loads(raw).get("type", "track")
        out.append((f"/v1/{kind}", 1, raw))
    return out


# -- the use case in process ------------------------------------------------------------


def use_case_latency(url: str, lines: list[bytes], rate: float) -> dict[str, Any]:
    """The ingest use case, one message per transaction, paced at ``rate``: service time
    (ingest + commit) and latency from the scheduled time (waits included)."""
    from leadgate.adapters.model_source import read_model
    from leadgate.services.ingest import ingest
    from leadgate.store import create_engine
    from leadgate.store.repository import Repository

    engine = create_engine(url)
    model = read_model()
    messages = [orjson.loads(raw) for raw in lines]
    service: list[float] = []
    latency: list[float] = []
    changes = 0
    started = time.perf_counter()
    for i, msg in enumerate(messages):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            result = ingest(Repository(conn), model, [msg])
        done = time.perf_counter()
        changes += len(result.stage_changes)
        service.append(done - t0)
        latency.append(done - scheduled)
    wall = time.perf_counter() - started
    engine.dispose()
    return {
        "messages": len(messages),
        "rate": rate,
        "seconds": wall,
        "achieved_events_per_s": len(messages) / wall if wall else 0.0,
        "stage_changes": changes,
        "service": latency_figures(service),
        "latency": latency_figures(latency),
    }


def profile_ingest(url: str, lines: list[bytes], chunk: int, out: Path) -> str:
    """cProfile of the ingest use case over ``lines`` in chunks; the top of the report."""
    from leadgate.adapters.model_source import read_model
    from leadgate.services.ingest import ingest
    from leadgate.store import create_engine, upgrade
    from leadgate.store.repository import Repository

    upgrade(url)
    engine = create_engine(url)
    model = read_model()
    messages = [orjson.loads(raw) for raw in lines]
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(0, len(messages), chunk):
        with engine.begin() as conn:
            ingest(Repository(conn), model, messages[i : i + chunk], AS_OF)
    profiler.disable()
    engine.dispose()
    profiler.dump_stats(out)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    return text.getvalue()


# -- bulk import -------------------------------------------------------------------------


def run_import(path: Path, url: str, chunk: int) -> dict[str, Any]:
    """``leadgate import`` as a child process: wall time, its summary and peak RSS."""
    argv = [*CLI, "import", "--events", str(path), "--database-url", url]
    argv += ["--chunk", str(chunk), "--at", AS_OF.isoformat()]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read the pipes in threads so a chatty child cannot block; wait4 gives its rusage.
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for r in readers:
        r.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = chunks.get("out", b"").decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"leadgate import failed:\n{chunks.get('err', b'').decode()}")
    return {
        "url": url.split("?")[0],
        "chunk": chunk,
        "seconds": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "summary": " ".join(output.split()),
    }


def postgres_schema(base: str) -> tuple[str, str]:
    """A fresh schema on ``base``: (URL that uses it, schema name)."""
    from sqlalchemy import text

    from leadgate.store import create_engine
    from leadgate.store.engine import normalise_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = normalise_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(base: str, schema: str) -> None:
    from sqlalchemy import text

    from leadgate.store import create_engine

    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


# -- the run ---------------------------------------------------------------------------


def fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="messages to import")
    parser.add_argument("--workdir", default="/tmp/leadgate-ingest-bench")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clients", type=int, default=4, help="concurrent /v1/batch clients")
    parser.add_argument("--sustain-seconds", type=float, default=30.0)
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--single-seconds", type=float, default=10.0)
    parser.add_argument("--single-rate", type=float, default=1000.0)
    parser.add_argument(
        "--http-pool", type=int, default=200_000, help="messages the HTTP steps may send"
    )
    parser.add_argument("--chunk", type=int, default=1000, help="leadgate import --chunk")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"some of {','.join(STEPS)}")
    parser.add_argument("--postgres-url", help="also import into a fresh schema there")
    parser.add_argument("--profile", action="store_true", help="cProfile the ingest use case")
    args = parser.parse_args()
    steps = {s for s in args.steps.split(",") if s}
    if steps - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(steps - set(STEPS)))}")
    workdir = Path(args.workdir)
    path = history_file(args)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "events": args.events,
        "file": str(path),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    http_steps = steps & {"sustained", "paced", "single"}
    pool: list[bytes] = []
    if http_steps or "anchor" in steps or args.profile:
        pool = time_ordered(read_lines(path, min(args.http_pool, args.events)))

    if "anchor" in steps:
        log(f"anchor on the HTTP pool ({len(pool):,} rows)")
        results["anchor_http"] = run_anchor(pool, workdir / "anchor-http.db")
    if "import" in steps:
        log(f"anchor on the whole file ({args.events:,} rows)")
        results["anchor_import"] = run_anchor(file_lines(path), workdir / "anchor-import.db")

    if http_steps:
        url = fresh_sqlite(workdir / "serve.db")
        log(f"starting leadgate serve on {url}")
        server = Server(url)
        # The single-message steps take the end of the pool, the batch steps the rest.
        singles = int(args.single_rate * args.single_seconds) if "single" in steps else 0
        if 2 * singles >= len(pool):
            raise SystemExit("--http-pool is too small for --single-seconds at --single-rate")
        single_http_lines = pool[len(pool) - 2 * singles : len(pool) - singles]
        use_case_lines = pool[len(pool) - singles :]
        bodies = batch_bodies(pool[: len(pool) - 2 * singles])
        used = 0
        try:
            rate = 0.0
            if "sustained" in steps:
                log(f"sustained /v1/batch, {args.clients} clients, {args.sustain_seconds:g} s")
                cpu = server.cpu_seconds()
                sus = asyncio.run(sustained(server, bodies, args.clients, args.sustain_seconds))
                sus["server_cpu_share"] = (server.cpu_seconds() - cpu) / sus["seconds"]
                log(
                    f"server CPU during the sustained step: {sus['server_cpu_share']:.0%} of a core"
                )
                results["sustained"] = sus
                used = sus["next_batch"]
                rate = float(sus["events_per_s"])
            if "paced" in steps and rate > 0:
                target = 0.7 * rate
                count = max(1, int(target * args.paced_seconds / BATCH))
                part = bodies[used : used + count]
                used += len(part)
                if len(part) < count:
                    log("warning: the HTTP pool ran out during the paced step; raise --http-pool")
                log(f"paced /v1/batch at {target:,.0f} events/s ({len(part)} batches)")
                requests = [("/v1/batch", n, body) for n, body in part]
                results["paced"] = asyncio.run(
                    paced(server.base, server.key, requests, target / BATCH)
                )
            if "single" in steps:
                lines = single_http_lines
                log(f"single calls at {args.single_rate:g}/s ({len(lines):,} messages)")
                results["single_http"] = asyncio.run(
                    paced(server.base, server.key, single_requests(lines), args.single_rate)
                )
        finally:
            results["server_peak_rss_mb"] = server.stop()
        if "single" in steps:
            lines = use_case_lines
            log(f"ingest use case in process, one message per transaction ({len(lines):,})")
            results["single_use_case"] = use_case_latency(url, lines, args.single_rate)

    if "import" in steps:
        url = fresh_sqlite(workdir / "import.db")
        log(f"leadgate import of {args.events:,} messages into {url}")
        results["import_sqlite"] = run_import(path, url, args.chunk)
        if args.postgres_url:
            pg_url, schema = postgres_schema(args.postgres_url)
            try:
                log(f"leadgate import into PostgreSQL schema {schema}")
                results["import_postgresql"] = run_import(path, pg_url, args.chunk)
            finally:
                drop_schema(args.postgres_url, schema)

    if args.profile:
        n = min(len(pool), 20_000)
        # Time-ordered in requests of 100 (live /v1/batch); file order in import chunks.
        cases = (
            ("time-ordered", pool[:n], BATCH),
            ("file-ordered", read_lines(path, n), args.chunk),
        )
        for name, lines, size in cases:
            url = fresh_sqlite(workdir / f"profile-{name}.db")
            out = workdir / f"ingest-{name}.prof"
            log(f"profiling ingest on {n:,} {name} messages -> {out}")
            results[f"profile_{name}"] = str(out)
            print(f"\n==== cProfile, ingest of {n:,} {name} messages, chunks of {size} ====")
            print(profile_ingest(url, lines, size, out))

    results["finished"] = datetime.now(UTC).isoformat()
    report(results)
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}-{args.events}.json"
    saved.write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {saved}")


def report(r: dict[str, Any]) -> None:
    """The table and the ratios against the targets."""
    rows: list[tuple[str, str, str, str, str]] = []

    def late(step: dict[str, Any]) -> str:
        n = int(step.get("unfinished", 0))
        return f" ({n:,} unanswered: p99 is a lower bound)" if n else ""

    def add(step: str, rate: float | None, lat: dict[str, float] | None, mem: Any = None) -> None:
        rows.append(
            (
                step,
                f"{rate:,.0f}" if rate is not None else "",
                f"{lat['p50_ms']:.1f}" if lat else "",
                f"{lat['p99_ms']:.1f}" if lat else "",
                f"{mem:,.0f}" if isinstance(mem, int | float) else "",
            )
        )

    if "anchor_http" in r:
        add(
            f"anchor, HTTP pool ({r['anchor_http']['rows']:,} rows)",
            r["anchor_http"]["rows_per_s"],
            None,
        )
    if "anchor_import" in r:
        a = r["anchor_import"]
        add(f"anchor, whole file ({a['rows']:,} rows)", a["rows_per_s"], None)
    if "sustained" in r:
        s = r["sustained"]
        add(
            f"/v1/batch sustained, {s['clients']} clients",
            s["events_per_s"],
            s["latency"],
            r.get("server_peak_rss_mb"),
        )
    if "paced" in r:
        p = r["paced"]
        add(f"/v1/batch paced at 70%{late(p)}", p["achieved_events_per_s"], p["latency"])
    if "single_http" in r:
        p = r["single_http"]
        add(
            f"single calls over HTTP at {p['target_requests_per_s']:,.0f}/s{late(p)}",
            p["achieved_events_per_s"],
            p["latency"],
        )
    if "single_use_case" in r:
        u = r["single_use_case"]
        add("ingest use case, 1 msg/tx: service time", u["achieved_events_per_s"], u["service"])
        add(f"ingest use case at {u['rate']:,.0f}/s: latency", None, u["latency"])
    for name in ("import_sqlite", "import_postgresql"):
        if name in r:
            i = r[name]
            add(f"leadgate import ({name[7:]})", r["events"] / i["seconds"], None, i["peak_rss_mb"])
    header = ("step", "events/s", "p50 ms", "p99 ms", "peak MB")
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(5)]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    http_anchor = r.get("anchor_http", {}).get("rows_per_s")
    if "sustained" in r and http_anchor:
        share = r["sustained"]["events_per_s"] / http_anchor
        print(
            f"ingest: /v1/batch / anchor = {share:.2%} (target >= {INGEST_SHARE:.0%}): "
            f"{verdict(share >= INGEST_SHARE)}"
        )
    if "paced" in r:
        p99 = r["paced"]["latency"]["p99_ms"]
        print(
            f"ingest: p99 at 70% = {p99:.1f} ms (target < {INGEST_P99_MS:g} ms): "
            f"{verdict(p99 < INGEST_P99_MS)}"
        )
    if "single_use_case" in r:
        u = r["single_use_case"]
        p99 = u["latency"]["p99_ms"]
        print(
            f"decision: p99 at {u['rate']:,.0f}/s = {p99:.1f} ms, service p99 "
            f"{u['service']['p99_ms']:.1f} ms (target < {DECISION_P99_MS:g} ms): "
            f"{verdict(p99 < DECISION_P99_MS)}"
        )
    if "single_http" in r:
        p99 = r["single_http"]["latency"]["p99_ms"]
        print(f"decision over HTTP (round trip, client side): p99 {p99:.1f} ms")
    import_anchor = r.get("anchor_import", {}).get("rows_per_s")
    for name in ("import_sqlite", "import_postgresql"):
        if name in r and import_anchor:
            rate = r["events"] / r[name]["seconds"]
            share = rate / import_anchor
            print(
                f"import ({name[7:]}): {rate:,.0f} events/s / anchor = {share:.2%} "
                f"(target >= {IMPORT_SHARE:.0%}): {verdict(share >= IMPORT_SHARE)}; "
                f"peak {r[name]['peak_rss_mb']:,.0f} MB"
            )
            print(f"  {r[name]['summary']}")


if __name__ == "__main__":
    main()
