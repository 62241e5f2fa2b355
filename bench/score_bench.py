"""Benchmark: score a synthetic history with the vectorised scorer, against an anchor.

    .venv/bin/python bench/score_bench.py --leads 1000000 --events-per-lead 18 \\
        --workdir /tmp/leadgate-bench

Steps, each timed in its own child process (so each peak memory is its own):

1. generate the history with ``leadgate.simulation`` (cached in the work directory);
2. load it into DuckDB with ``fastscore.load_segment`` (reported, not part of scoring);
3. the anchor: one GROUP BY summing a per-type weight with exponential decay per lead,
   on the same loaded events (best of ``--repeat`` runs);
4. full scoring with the default model through ``fastscore.score_all`` (best of
   ``--repeat`` runs);
5. the reference evaluator on the first ``--reference-leads`` leads, for its events/s
   and to check that both paths agree on them.

Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def as_of(args: argparse.Namespace) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=args.days)


def database(args: argparse.Namespace) -> Path:
    return Path(args.workdir) / f"bench-{args.leads}-{args.events_per_lead:g}-{args.seed}.duckdb"


def events_file(args: argparse.Namespace) -> Path:
    name = f"events-{args.leads}-{args.events_per_lead:g}-{args.days}-{args.seed}.jsonl"
    return Path(args.workdir) / name


def connect(args: argparse.Namespace) -> Any:
    from leadgate.fastscore import connect as fs_connect

    temp = Path(args.workdir) / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    return fs_connect(
        database(args), memory_limit=args.memory_limit, temp_directory=temp, threads=args.threads
    )


# -- stages, each run in a child process --------------------------------------------


def stage_load(args: argparse.Namespace) -> dict[str, Any]:
    from leadgate.fastscore import load_segment

    database(args).unlink(missing_ok=True)
    con = connect(args)
    started = time.perf_counter()
    store = load_segment(con, events_file(args))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "events": store.count(store.events),
        "leads": store.count(store.leads),
        "bytes": events_file(args).stat().st_size,
    }


def anchor_sql(args: argparse.Namespace) -> str:
    """Per-lead sum of per-type weights (the model's first event rule per type), decayed."""
    from leadgate.adapters.model_source import read_model
    from leadgate.domain.model import EventRule
    from leadgate.fastscore.sql import micros, num, text

    model = read_model()
    weights: dict[str, float] = {}
    for rule in model.rules:
        if isinstance(rule, EventRule):
            weights.setdefault(rule.match.event, rule.points)
    case = " ".join(f"WHEN {text(t)} THEN {num(w)}" for t, w in weights.items())
    limit = micros(as_of(args))
    half_life = (model.half_life or timedelta(days=45)).total_seconds()
    return f"""
        CREATE OR REPLACE TEMP TABLE bench_anchor AS
        SELECT lead_key, sum(CASE type {case} ELSE {num(0.0)} END
                             * pow(0.5, (CAST({limit} - us AS DOUBLE) / 1e6) / {num(half_life)}))
               AS score
        FROM fs_events WHERE us <= {limit} GROUP BY lead_key"""


def timed(run: Any, repeat: int) -> tuple[float, list[float]]:
    """The best of ``repeat`` runs (the first one reads a cold buffer pool), and all."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), times


def stage_anchor(args: argparse.Namespace) -> dict[str, Any]:
    con = connect(args)
    sql = anchor_sql(args)
    seconds, times = timed(lambda: con.execute(sql), args.repeat)
    rows = con.execute("SELECT count(*) FROM bench_anchor").fetchall()[0][0]
    return {"seconds": seconds, "runs": times, "rows": rows}


def stage_fast(args: argparse.Namespace) -> dict[str, Any]:
    from leadgate.adapters.model_source import read_model
    from leadgate.fastscore import EventStore, score_all

    con = connect(args)
    store = EventStore(con)
    model = read_model()
    seconds, times = timed(
        lambda: score_all(model, store, as_of(args), table="bench_scores"), args.repeat
    )
    scores = con.table("bench_scores")
    stages = dict(scores.aggregate("stage, count(*)").fetchall())
    con.execute(  # kept for the reference check, which runs in another process
        "CREATE OR REPLACE TABLE bench_subset AS SELECT lead_id, total, stage FROM bench_scores "
        f"WHERE lead_id IN (SELECT lead_id FROM fs_leads WHERE lead_key <= {args.reference_leads})"
    )
    return {"seconds": seconds, "runs": times, "rows": sum(stages.values()), "stages": stages}


def stage_reference(args: argparse.Namespace) -> dict[str, Any]:
    """The reference evaluator on the first leads, and agreement with the fast scores."""
    import orjson

    from leadgate.adapters.model_source import read_model
    from leadgate.domain.events import Event, Lead
    from leadgate.domain.scoring import EPOCH, evaluate
    from leadgate.domain.stages import decide

    con = connect(args)
    model = read_model()
    n = args.reference_leads
    leads = {
        key: Lead(lead_id, orjson.loads(attrs) if attrs else {})
        for key, lead_id, attrs in con.execute(
            f"SELECT lead_key, lead_id, attributes FROM fs_leads WHERE lead_key <= {n}"
        ).fetchall()
    }
    events: dict[int, list[Event]] = {key: [] for key in leads}
    for key, event_id, kind, us, props in con.execute(
        f"SELECT lead_key, id, type, us, props FROM fs_events WHERE lead_key <= {n}"
    ).fetchall():
        at = EPOCH + timedelta(microseconds=us)
        events[key].append(Event(event_id, leads[key].id, kind, at, orjson.loads(props)))
    moment = as_of(args)
    started = time.perf_counter()
    breakdowns = {
        lead.id: evaluate(model, lead, events[key], moment) for key, lead in leads.items()
    }
    seconds = time.perf_counter() - started
    fast = {row[0]: row for row in con.execute("SELECT * FROM bench_subset").fetchall()}
    differ = sum(
        1
        for lead_id, b in breakdowns.items()
        if abs(fast[lead_id][1] - b.total) > 1e-9 or fast[lead_id][2] != decide(b, model).stage
    )
    return {
        "seconds": seconds,
        "leads": len(leads),
        "events": sum(len(e) for e in events.values()),
        "differ": differ,
    }


STAGES = {
    "load": stage_load,
    "anchor": stage_anchor,
    "fast": stage_fast,
    "reference": stage_reference,
}


def run_child(name: str, argv: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--stage", name, *argv],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def generate(args: argparse.Namespace) -> float | None:
    path = events_file(args)
    if path.exists():
        return None
    from leadgate.simulation import main_simulate

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.perf_counter()
    main_simulate(
        args.leads,
        args.days,
        args.seed,
        partial,
        path.with_suffix(".truth.csv"),
        events_per_lead=args.events_per_lead,
    )
    partial.rename(path)
    return time.perf_counter() - started


def report(results: dict[str, Any]) -> str:
    events = results["load"]["events"]
    rows = [("step", "wall s", "events/s", "peak MB")]
    for name in ("load", "anchor", "fast", "reference"):
        r = results[name]
        count = r.get("events", events)
        rows.append(
            (name, f"{r['seconds']:.2f}", f"{count / r['seconds']:,.0f}", f"{r['peak_mb']:,.0f}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    ratio = results["fast"]["seconds"] / results["anchor"]["seconds"]
    ref = results["reference"]
    speedup = (events / results["fast"]["seconds"]) / (ref["events"] / ref["seconds"])
    lines += [
        f"events {events:,} for {results['load']['leads']:,} leads; "
        f"fast / anchor = {ratio:.1f}x; fast is {speedup:,.0f}x the reference's events/s",
        f"reference check: {ref['differ']} of {ref['leads']:,} leads differ",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument(
        "--events-per-lead",
        type=float,
        default=18.0,
        help="the simulation's knob (18 gives about 20.5 events per lead)",
    )
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/leadgate-bench")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference-leads", type=int, default=2000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of the anchor and of scoring; the best counts"
    )
    parser.add_argument("--skip-load", action="store_true", help="reuse the loaded database")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = STAGES[args.stage](args)
        result["peak_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    argv = [a for a in sys.argv[1:] if a != "--skip-load"]
    results: dict[str, Any] = {"args": vars(args) | {"stage": None}}
    results["generate_seconds"] = generate(args)
    if args.skip_load and database(args).exists():
        results["load"] = json.loads((Path(args.workdir) / "load.json").read_text())
    else:
        results["load"] = run_child("load", argv)
        (Path(args.workdir) / "load.json").write_text(json.dumps(results["load"]))
    for name in ("anchor", "fast", "reference"):
        results[name] = run_child(name, argv)
    results["fast_over_anchor"] = results["fast"]["seconds"] / results["anchor"]["seconds"]
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = report(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"score-bench-{args.leads}-{stamp}.json"
    out.write_text(json.dumps(results | {"table": text.splitlines()}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
