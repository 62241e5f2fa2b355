"""Benchmark: handover latency, from the event that makes a lead sales ready to the
webhook receiver's 2xx, under background load (issue 4: p50 < 1 s, p99 < 2 s at
1,000 events/s).

    .venv/bin/python bench/handover_bench.py            # 0, 250, 500, 1000 events/s; ~5 min
    .venv/bin/python bench/handover_bench.py --quick    # 0 and 1000 events/s, 10 probes; ~40 s

Setup: a fresh SQLite file in ``--workdir``; a write key and an admin key
(``leadgate keys create``); the demo sales team (``leadgate team load``); one webhook
subscription for ``handover.assigned`` pointing at a receiver in this process
(``leadgate webhooks add``); then ``leadgate serve`` as a child process, whose
in-process outbox worker delivers (it polls every 0.5 s when idle).

The receiver is a threaded ``http.server`` (HTTP/1.1, ``TCP_NODELAY``) that verifies
each ``Leadgate-Signature`` with ``leadgate.notify.webhook.verify_signature`` and
records, per lead id (``data.lead.id``), when the webhook arrived, then answers 200.

Probes: ``--probes`` leads per phase, warmed up to MQL before any load (identify
with title Director, company_size 50, country GB and an email: 20 fit points; two
/pricing page views: 20; a guide download: 8; 48 >= the default model's MQL
threshold of 40). In a phase, each probe then gets one ``/v1/track`` "Quote
Requested" with a message (the intent action ``intent-quote``, +20), one at a time,
spaced by ``--spacing`` seconds on average (uniform +-50%, so that they do not lock
to the worker's poll). t0 is taken just before the request is sent, t1 when the
receiver gets the ``handover.assigned`` webhook for that lead; latency = t1 - t0.
The request's own round trip (t0 to its 2xx) is reported too.

Background load: ``/v1/batch`` requests of ``--batch`` messages (page views of
blog/about pages and "Email Opened" tracks for ``--users`` random user ids, none of
them sales ready), due at a steady rate and sent by a pool of ``--threads`` httpx
clients (at most that many in flight: when the server falls behind, requests go out
late and the lag between due and sent time grows). The phase's achieved rate is the
events accepted while the probes ran, divided by that time; the lag of the first and
last quarter of the phase's requests shows whether a backlog built up.

Results are printed and written as JSON to bench/results/ (not in git).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from leadgate.notify.webhook import verify_signature

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results")
TEAM = ROOT / "src" / "leadgate" / "models" / "demo-team.yaml"
CLI = [sys.executable, "-c", "from leadgate.cli import main; main()"]
SECRET = "whsec_handover_bench_0123456789"
TARGET_P50, TARGET_P99 = 1.0, 2.0
BLOG = [f"/blog/post-{i}" for i in range(40)] + ["/about", "/", "/contact", "/work"]


def log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation (of 30 values, p99 is nearly the max)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def figures(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": pct(values, 0.5),
        "p90": pct(values, 0.9),
        "p99": pct(values, 0.99),
        "max": max(values) if values else None,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def leadgate(*argv: str) -> str:
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"leadgate {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rpartition(")")[2].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(d.name)] = (int(fields[11]) + int(fields[12]), cmd.strip()[:100])
    return out


def machine_snapshot(seconds: float = 1.0) -> dict[str, Any]:
    """Load average and the processes that used CPU over the next ``seconds``
    (this benchmark and its server included): what else was running."""
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    tick = os.sysconf("SC_CLK_TCK")
    busy = sorted(
        (
            ((ticks - before[pid][0]) / tick / seconds, pid, cmd)
            for pid, (ticks, cmd) in after.items()
            if pid in before and ticks > before[pid][0]
        ),
        reverse=True,
    )
    return {
        "loadavg": list(os.getloadavg()),
        "busy": [f"{share:.0%} pid {pid}: {cmd}" for share, pid, cmd in busy[:6]],
    }


# -- the receiver -----------------------------------------------------------------------


class Receiver:
    """A threaded HTTP server in this process: verifies signatures, records the first
    arrival time of ``handover.assigned`` per lead id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived: dict[str, float] = {}
        self.deliveries = 0
        self.repeats = 0
        self.bad = 0
        self.other_events = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without TCP_NODELAY, Nagle's
            # algorithm and the client's delayed ACK hold each answer ~40 ms
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                try:
                    verify_signature(SECRET, self.headers.get("Leadgate-Signature"), body)
                except ValueError:
                    with receiver.lock:
                        receiver.bad += 1
                    self._answer(401)
                    return
                doc = orjson.loads(body)
                with receiver.lock:
                    receiver.deliveries += 1
                    if doc.get("type") != "handover.assigned":
                        receiver.other_events += 1
                    lead = ((doc.get("data") or {}).get("lead") or {}).get("id")
                    if lead in receiver.arrived:
                        receiver.repeats += 1
                    elif lead is not None:
                        receiver.arrived[lead] = now
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.port = free_port()
        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def got(self, lead: str) -> float | None:
        with self.lock:
            return self.arrived.get(lead)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the server -------------------------------------------------------------------------


class Serve:
    """``leadgate serve`` as a child process."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.errlog = (workdir / "serve.stderr").open("wb")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), "--database-url", url],
            stdout=subprocess.DEVNULL,
            stderr=self.errlog,
        )
        for _ in range(600):
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    msg = f"leadgate serve exited; see {workdir / 'serve.stderr'}"
                    raise SystemExit(msg) from None
                time.sleep(0.1)
        raise SystemExit("leadgate serve did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.errlog.close()


# -- background load --------------------------------------------------------------------


def background_batch(rng: random.Random, size: int, users: int) -> bytes:
    now = datetime.now(UTC)
    batch: list[dict[str, Any]] = []
    for _ in range(size):
        user = f"bg-{rng.randrange(users)}"
        common = {"userId": user, "messageId": uuid.uuid4().hex, "timestamp": iso(now)}
        if rng.random() < 0.6:
            path = rng.choice(BLOG)
            batch.append({"type": "page", "properties": {"path": path}, **common})
        else:
            campaign = f"nurture-{rng.randrange(12)}"
            props = {"campaign": campaign, "subject": "This week's ideas"}
            batch.append({"type": "track", "event": "Email Opened", "properties": props, **common})
    return orjson.dumps({"batch": batch})


class Background:
    """Open-loop ``/v1/batch`` load at ``rate`` events/s, at most ``threads`` in flight."""

    def __init__(self, base: str, key: str, rate: float, args: argparse.Namespace) -> None:
        self.base, self.key, self.rate = base, key, rate
        self.size, self.users, self.threads = args.batch, args.users, args.threads
        self.interval = self.size / rate
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.next_index = 0
        self.records: list[tuple[float, float, float, int, int]] = []  # due, sent, done, n, ok
        self.errors = 0
        self.start = time.perf_counter()
        self.workers = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(self.threads)
        ]
        for w in self.workers:
            w.start()

    def _work(self, seed: int) -> None:
        rng = random.Random(seed * 7919 + int(self.rate))
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(
            base_url=self.base, auth=(self.key, ""), timeout=120, limits=limits
        ) as client:
            while not self.stop_flag.is_set():
                with self.lock:
                    index = self.next_index
                    self.next_index += 1
                due = self.start + index * self.interval
                wait = due - time.perf_counter()
                if wait > 0 and self.stop_flag.wait(wait):
                    return
                body = background_batch(rng, self.size, self.users)
                sent = time.perf_counter()
                try:
                    r = client.post(
                        "/v1/batch", content=body, headers={"content-type": "application/json"}
                    )
                    ok = r.status_code < 300
                except httpx.HTTPError:
                    ok = False
                done = time.perf_counter()
                with self.lock:
                    self.records.append((due, sent, done, self.size, ok))
                    self.errors += not ok

    def stop(self) -> None:
        self.stop_flag.set()
        for w in self.workers:
            w.join(timeout=180)

    def summary(self, t_from: float, t_to: float) -> dict[str, Any]:
        """Achieved rate over [t_from, t_to] (requests answered 2xx in it) and lag."""
        with self.lock:
            recs = sorted(self.records)
            not_sent = max(0, int((t_to - self.start) / self.interval) - len(recs))
        inside = [r for r in recs if t_from <= r[2] <= t_to and r[4]]
        events = sum(r[3] for r in inside)
        window = [r for r in recs if t_from <= r[0] <= t_to]
        q = max(1, len(window) // 4)
        lag_first = [r[1] - r[0] for r in window[:q]]
        lag_last = [r[1] - r[0] for r in window[-q:]]
        latency = [r[2] - r[1] for r in recs if r[4]]
        return {
            "target_events_per_s": self.rate,
            "achieved_events_per_s": events / (t_to - t_from) if t_to > t_from else None,
            "requests": len(recs),
            "errors": self.errors,
            "lag_first_quarter_s": statistics.median(lag_first) if lag_first else None,
            "lag_last_quarter_s": statistics.median(lag_last) if lag_last else None,
            "due_not_sent_at_end": not_sent,
            "request_latency_s": figures(latency),
        }


# -- probes -----------------------------------------------------------------------------


def warm_up_messages(lead: str, i: int, at: datetime) -> list[dict[str, Any]]:
    """Identify (fit 20), two /pricing views (20), a guide download (8): 48 >= MQL 40."""
    traits = {
        "email": f"{lead}@acme-{i}.example",
        "first_name": "Probe",
        "last_name": f"Lead {i}",
        "title": "Director",
        "company": f"Acme {i}",
        "company_size": 50,
        "country": "GB",
    }

    def msg(seconds: int, **body: Any) -> dict[str, Any]:
        t = iso(at + timedelta(seconds=seconds))
        return {"userId": lead, "messageId": uuid.uuid4().hex, "timestamp": t, **body}

    return [
        msg(0, type="identify", traits=traits),
        msg(10, type="page", name="Pricing", properties={"path": "/pricing"}),
        msg(70, type="page", name="Pricing", properties={"path": "/pricing"}),
        msg(
            120,
            type="track",
            event="Guide Downloaded",
            properties={"asset": "website-redesign-guide", "asset_type": "guide"},
        ),
    ]


def warm_up(base: str, write: str, admin: str, leads: list[str]) -> dict[str, int]:
    """Send the warm-up messages of every probe lead, then read back their stages."""
    at = datetime.now(UTC) - timedelta(minutes=10)
    with httpx.Client(base_url=base, auth=(write, ""), timeout=60) as client:
        for start in range(0, len(leads), 25):
            msgs = [
                m
                for i, lead in enumerate(leads[start : start + 25], start)
                for m in warm_up_messages(lead, i, at)
            ]
            r = client.post("/v1/batch", json={"batch": msgs})
            r.raise_for_status()
    stages: dict[str, int] = {}
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=60
    ) as client:
        for lead in leads:
            r = client.get(f"/api/leads/{lead}")
            r.raise_for_status()
            stage = str(r.json().get("stage"))
            stages[stage] = stages.get(stage, 0) + 1
    return stages


QUOTE_MESSAGES = [
    "Could you send us a quote for a website redesign? About 20 pages.",
    "We'd like a quote for SEO work on our new site, starting next month.",
    "Please quote for a rebrand and a new website for our consultancy.",
]


def run_probes(
    base: str, write: str, receiver: Receiver, leads: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    rng = random.Random(len(leads))
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, auth=(write, ""), timeout=120) as client:
        for i, lead in enumerate(leads):
            body = orjson.dumps(
                {
                    "userId": lead,
                    "event": "Quote Requested",
                    "messageId": uuid.uuid4().hex,
                    "timestamp": iso(datetime.now(UTC)),
                    "properties": {"message": QUOTE_MESSAGES[i % 3], "service": "web-design"},
                }
            )
            t0 = time.perf_counter()
            r = client.post("/v1/track", content=body, headers={"content-type": "application/json"})
            t_ack = time.perf_counter()
            out.append({"lead": lead, "t0": t0, "ack": t_ack - t0, "status": r.status_code})
            if i + 1 < len(leads):
                pause = args.spacing * rng.uniform(0.5, 1.5) - (time.perf_counter() - t0)
                time.sleep(max(0.05, pause))
    deadline = time.perf_counter() + args.wait
    while time.perf_counter() < deadline and any(receiver.got(p["lead"]) is None for p in out):
        time.sleep(0.05)
    for p in out:
        t1 = receiver.got(p["lead"])
        p["latency"] = None if t1 is None else t1 - p["t0"]
    return out


# -- a phase ----------------------------------------------------------------------------


def run_phase(
    rate: float,
    leads: list[str],
    serve: Serve,
    keys: dict[str, str],
    receiver: Receiver,
    args: argparse.Namespace,
) -> dict[str, Any]:
    log(f"phase: background {rate:g} events/s, {len(leads)} probes")
    before = machine_snapshot()
    cpu0 = serve.cpu_seconds()
    t_start = time.perf_counter()
    bg = Background(serve.base, keys["write"], rate, args) if rate > 0 else None
    if bg is not None:
        time.sleep(args.settle)
    t_from = time.perf_counter()
    probes = run_probes(serve.base, keys["write"], receiver, leads, args)
    t_to = time.perf_counter()
    cpu1 = serve.cpu_seconds()
    after = machine_snapshot()
    background = None
    if bg is not None:
        bg.stop()
        background = bg.summary(t_from, t_to)
    lat = [p["latency"] for p in probes if p["latency"] is not None]
    acks = [p["ack"] for p in probes]
    result = {
        "background_rate": rate,
        "probes": len(probes),
        "arrived": len(lat),
        "latency_s": figures(lat),
        "track_request_s": figures(acks),
        "non_2xx_probe_requests": sum(p["status"] >= 300 for p in probes),
        "background": background,
        "server_cpu_share": (cpu1 - cpu0) / (t_to - t_start),
        "seconds": time.perf_counter() - t_start,
        "machine_before": before,
        "machine_after": after,
        "samples": [{"lead": p["lead"], "latency": p["latency"], "ack": p["ack"]} for p in probes],
    }
    f = result["latency_s"]
    log(
        f"  arrived {len(lat)}/{len(probes)}; p50 {fmt(f['p50'])} p99 {fmt(f['p99'])} s"
        + (
            f"; background achieved {background['achieved_events_per_s']:.0f}/s"
            if background
            else ""
        )
    )
    time.sleep(args.pause)  # let the server finish what it was given
    return result


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def database_counts(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, Any] = {}
        for table in ("events", "leads", "handovers"):
            with contextlib.suppress(sqlite3.Error):
                out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        with contextlib.suppress(sqlite3.Error):
            out["outbox"] = dict(
                conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
            )
        return out
    finally:
        conn.close()


def report(r: dict[str, Any]) -> None:
    print()
    print(
        f"Handover latency, {r['started']} UTC; load average before "
        f"{' '.join(f'{x:.2f}' for x in r['machine_before']['loadavg'])}"
    )
    head = (
        "| background target/s | achieved/s | lag first/last q s | arrived | "
        "p50 s | p90 s | p99 s | max s | track p50 / max s | server CPU |"
    )
    print(head)
    print("|" + "---:|" * 10)
    for p in r["phases"]:
        b = p["background"]
        f, a = p["latency_s"], p["track_request_s"]
        achieved = "-" if b is None else f"{b['achieved_events_per_s']:.0f}"
        lag = (
            "-"
            if b is None
            else f"{fmt(b['lag_first_quarter_s'], 2)} / {fmt(b['lag_last_quarter_s'], 2)}"
        )
        print(
            f"| {p['background_rate']:g} | {achieved} | {lag} | {p['arrived']}/{p['probes']} | "
            f"{fmt(f['p50'])} | {fmt(f['p90'])} | {fmt(f['p99'])} | {fmt(f['max'])} | "
            f"{fmt(a['p50'])} / {fmt(a['max'])} | {p['server_cpu_share']:.0%} |"
        )
    print()
    for p in r["phases"]:
        f = p["latency_s"]
        ok = (
            p["arrived"] == p["probes"]
            and f["p50"] is not None
            and f["p50"] < TARGET_P50
            and f["p99"] is not None
            and f["p99"] < TARGET_P99
        )
        print(
            f"background {p['background_rate']:g}/s: p50 < {TARGET_P50:g} s and p99 < "
            f"{TARGET_P99:g} s: {'met' if ok else 'NOT met'}"
        )
    print(f"receiver: {r['receiver']}; database: {r['database']}")
    ours = {f"pid {os.getpid()}:", f"pid {r['server_pid']}:"}
    others = {
        line.split(": ", 1)[1]
        for p in r["phases"]
        for snap in (p["machine_before"], p["machine_after"])
        for line in snap["busy"]
        if line.split(": ", 1)[1].strip() and not any(o in line for o in ours)
    }
    print("other processes busy during the phases (1 s samples):")
    for line in sorted(others):
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--background-rate", type=float, default=1000.0)
    parser.add_argument(
        "--rates",
        default=None,
        help="comma-separated background rates, 0 for none (default: 0, rate/4, rate/2, rate)",
    )
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--spacing", type=float, default=2.0, help="mean seconds between probes")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of load before probes")
    parser.add_argument("--wait", type=float, default=30.0, help="max wait for the last webhooks")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between phases")
    parser.add_argument("--batch", type=int, default=50, help="messages per background request")
    parser.add_argument("--users", type=int, default=20000, help="background user ids")
    parser.add_argument("--threads", type=int, default=8, help="background requests in flight")
    parser.add_argument("--quick", action="store_true", help="0 and rate only, 10 probes")
    args = parser.parse_args()
    top = args.background_rate
    if args.rates is not None:
        rates = [float(x) for x in args.rates.split(",") if x.strip()]
    elif args.quick:
        rates = [0.0, top]
    else:
        rates = [0.0, top / 4, top / 2, top]
    if args.quick:
        args.probes, args.spacing, args.settle, args.pause = 10, 1.5, 3.0, 1.0

    own_dir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="leadgate-handover-")) if own_dir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "handover.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": f"{started:%Y-%m-%d %H:%M:%S}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "machine_before": machine_snapshot(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rates": rates,
    }
    log(f"work dir {workdir}; load average {results['machine_before']['loadavg']}")
    receiver = Receiver()
    log("keys, team and webhook subscription")
    keys = {
        kind: leadgate("keys", "create", "--kind", kind, "--database-url", url)
        .strip()
        .splitlines()[-1]
        .strip()
        for kind in ("write", "admin")
    }
    leadgate("team", "load", str(TEAM), "--database-url", url)
    leadgate(
        "webhooks", "add", receiver.url, "--secret", SECRET,
        "--events", "handover.assigned", "--database-url", url,
    )  # fmt: skip
    serve = Serve(url, workdir)
    results["server_pid"] = serve.proc.pid
    try:
        run_id = uuid.uuid4().hex[:6]
        plan = [[f"probe-{run_id}-{n}-{i}" for i in range(args.probes)] for n in range(len(rates))]
        log(f"warming up {args.probes * len(rates)} probe leads")
        stages = warm_up(serve.base, keys["write"], keys["admin"], [x for p in plan for x in p])
        results["warm_up_stages"] = stages
        log(f"  stages after warm-up: {stages}")
        if set(stages) != {"mql"}:
            log("  WARNING: not every probe lead is an MQL")
        results["phases"] = [
            run_phase(rate, leads, serve, keys, receiver, args)
            for rate, leads in zip(rates, plan, strict=True)
        ]
    finally:
        serve.stop()
        receiver.stop()
    results["receiver"] = {
        "deliveries": receiver.deliveries,
        "repeats": receiver.repeats,
        "bad_signatures": receiver.bad,
        "other_events": receiver.other_events,
    }
    results["database"] = database_counts(db)
    results["machine_after"] = machine_snapshot()
    report(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"handover-{started:%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"JSON: {out}")
    if own_dir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
