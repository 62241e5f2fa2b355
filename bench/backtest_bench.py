"""Benchmark: backtest a draft model against the default one on a simulated history.

    .venv/bin/python bench/backtest_bench.py                  # 100,000 leads, ~2M events
    .venv/bin/python bench/backtest_bench.py --leads 10000    # a quick run

Steps, each in its own child process (so each peak memory is its own):

1. generate the history with ``leadgate.simulation`` (cached in the work directory);
2. load it into DuckDB with ``fastscore.load_segment`` (model independent: done once
   per history, shared by every backtest of it);
3. backtest (``--repeat`` runs, medians reported): replay the history under the default
   model and under the draft with ``learning.replay.fast_checkpoints``, then compare
   them against the simulation's ground truth (``learning.backtest.compare``);
4. reference: the reference evaluator (``backtest.reference_checkpoints``) on a sample
   of leads, checked against the vectorised checkpoints of the same leads.

Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DRAFT_CHANGES = (
    # the draft: a lower bar for MQL and SQL (35 instead of 40)
    ("thresholds: {mql: 40, sql: 40}", "thresholds: {mql: 35, sql: 35}"),
    ('version: "1"', 'version: "bench-draft"'),
)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stem(args: argparse.Namespace) -> Path:
    knob = f"{args.events_per_lead:g}".replace(".", "_")  # no dot: with_suffix would cut it
    name = f"backtest-{args.leads}-{knob}-{args.days}-{args.seed}"
    return Path(args.workdir) / name


def connect(args: argparse.Namespace) -> Any:
    from leadgate.fastscore import connect as fs_connect

    temp = Path(args.workdir) / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    return fs_connect(
        stem(args).with_suffix(".duckdb"),
        memory_limit=args.memory_limit,
        temp_directory=temp,
        threads=args.threads,
    )


def models() -> tuple[Any, Any]:
    from leadgate.adapters.model_source import default_model_text, read_model
    from leadgate.domain.model_file import load_model

    text = default_model_text()
    for old, new in DRAFT_CHANGES:
        assert old in text, old
        text = text.replace(old, new)
    return read_model(), load_model(text, "bench-draft.yaml")


# -- stages, each run in a child process ------------------------------------------------


def stage_load(args: argparse.Namespace) -> dict[str, Any]:
    from leadgate.fastscore import load_segment

    path = stem(args).with_suffix(".duckdb")
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    store = load_segment(connect(args), stem(args).with_suffix(".jsonl"))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "events": store.count(store.events),
        "leads": store.count(store.leads),
    }


def stage_backtest(args: argparse.Namespace) -> dict[str, Any]:
    from leadgate.fastscore import EventStore
    from leadgate.learning.backtest import compare
    from leadgate.learning.replay import fast_checkpoints
    from leadgate.services.sources import read_outcome_records

    current, draft = models()
    started = time.perf_counter()
    store = EventStore(connect(args))
    outcomes = read_outcome_records(stem(args).with_suffix(".truth.csv"))
    read = time.perf_counter()
    old = fast_checkpoints(current, store)
    replayed_current = time.perf_counter()
    new = fast_checkpoints(draft, store)
    replayed_draft = time.perf_counter()
    result = compare(old, new, outcomes)
    done = time.perf_counter()
    sample = _sample(old, new, args)
    return {
        "seconds": done - started,
        "steps": {
            "outcomes": read - started,
            "replay current": replayed_current - read,
            "replay draft": replayed_draft - replayed_current,
            "compare": done - replayed_draft,
        },
        "checkpoints": {"current": len(old.at), "draft": len(new.at)},
        "result": result,
        "sample": sample,
    }


def _rows(cp: Any, keep: set[int]) -> dict[str, list[list[Any]]]:
    out: dict[str, list[list[Any]]] = {}
    for n, at, total, intent in zip(
        cp.lead.tolist(), cp.at.tolist(), cp.total.tolist(), cp.intent.tolist(), strict=True
    ):
        if n in keep:
            out.setdefault(cp.lead_ids[n], []).append([at, total, intent])
    return out


def _sample(old: Any, new: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The vectorised checkpoints of a seeded sample of leads: half of them among the
    leads with kept checkpoints (the ones that can be handed over)."""
    rng = random.Random(args.seed)
    everyone = range(len(old.lead_ids))
    kept = sorted(set(old.lead.tolist()) | set(new.lead.tolist()))
    size = args.reference_leads // 2
    keep = set(rng.sample(everyone, min(size, len(old.lead_ids))))
    keep |= set(rng.sample(kept, min(size, len(kept))))
    return {
        "leads": sorted(old.lead_ids[n] for n in keep),
        "current": _rows(old, keep),
        "draft": _rows(new, keep),
    }


def stage_reference(args: argparse.Namespace) -> dict[str, Any]:
    import orjson

    from leadgate.domain.events import Event, Lead
    from leadgate.learning.backtest import from_us, reference_checkpoints

    sample = json.loads((Path(args.workdir) / "sample.json").read_text())
    con = connect(args)
    ids = sample["leads"]
    con.execute("CREATE TEMP TABLE wanted AS SELECT unnest(?::VARCHAR[]) AS lead_id", [ids])
    keys = dict(
        con.execute(
            "SELECT lead_key, l.lead_id FROM fs_leads l SEMI JOIN wanted USING (lead_id)"
        ).fetchall()
    )
    leads = {
        lead_id: Lead(lead_id, orjson.loads(attrs) if attrs else {})
        for lead_id, attrs in con.execute(
            "SELECT l.lead_id, l.attributes FROM fs_leads l SEMI JOIN wanted USING (lead_id)"
        ).fetchall()
    }
    events: dict[str, list[Event]] = {}
    for key, event_id, kind, us, props in con.execute(
        "SELECT lead_key, id, type, us, props FROM fs_events "
        "WHERE lead_key IN (SELECT unnest(?::INTEGER[]))",
        [list(keys)],
    ).fetchall():
        lead_id = keys[key]
        events.setdefault(lead_id, []).append(
            Event(event_id, lead_id, kind, from_us(us), orjson.loads(props))
        )
    current, draft = models()
    started = time.perf_counter()
    differ = 0
    checked = 0
    for name, model in (("current", current), ("draft", draft)):
        ref = reference_checkpoints(model, leads, events)
        rows = _rows(ref, set(range(len(ref.lead_ids))))
        fast = sample[name]
        for lead_id in ids:
            mine, theirs = rows.get(lead_id, []), fast.get(lead_id, [])
            checked += len(mine)
            same = len(mine) == len(theirs) and all(
                a[0] == b[0] and a[2] == b[2] and abs(a[1] - b[1]) <= 1e-9
                for a, b in zip(mine, theirs, strict=True)
            )
            differ += not same
    return {
        "seconds": time.perf_counter() - started,
        "leads": len(ids),
        "events": sum(len(e) for e in events.values()),
        "checkpoints_compared": checked,
        "differ": differ,
    }


STAGES = {"load": stage_load, "backtest": stage_backtest, "reference": stage_reference}


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
    path = stem(args).with_suffix(".jsonl")
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
        stem(args).with_suffix(".truth.csv"),
        events_per_lead=args.events_per_lead,
    )
    partial.rename(path)
    return time.perf_counter() - started


def report(results: dict[str, Any]) -> str:
    load, runs, ref = results["load"], results["backtest_runs"], results["reference"]
    med = results["backtest"]
    rows = [("step", "wall s", "peak MB")]
    rows.append(("load (once per history)", f"{load['seconds']:.2f}", f"{load['peak_mb']:,.0f}"))
    rows.append(
        (
            f"backtest, median of {len(runs)}",
            f"{med['seconds']:.2f}",
            f"{med['peak_mb']:,.0f}",
        )
    )
    for name, value in med["steps"].items():
        rows.append((f"  {name}", f"{value:.2f}", ""))
    rows.append(
        (f"reference, {ref['leads']:,} leads", f"{ref['seconds']:.2f}", f"{ref['peak_mb']:,.0f}")
    )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    result = runs[0]["result"]
    a, b = result["current"], result["draft"]
    lines += [
        f"{load['events']:,} events, {load['leads']:,} leads; all runs: "
        + ", ".join(f"{r['seconds']:.1f} s / {r['peak_mb']:,.0f} MB" for r in runs),
        f"end to end (load + backtest): {load['seconds'] + med['seconds']:.1f} s",
        f"kept checkpoints: current {runs[0]['checkpoints']['current']:,}, "
        f"draft {runs[0]['checkpoints']['draft']:,}",
        f"current {a['model']}: {a['handovers']:,} handovers, precision {a['precision']:.3f}, "
        f"recall {a['recall']:.3f}",
        f"draft {b['model']}: {b['handovers']:,} handovers, precision {b['precision']:.3f}, "
        f"recall {b['recall']:.3f}",
        f"reference check: {ref['differ']} of {ref['leads']:,} leads differ "
        f"({ref['checkpoints_compared']:,} checkpoints per model compared, both models)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument(
        "--events-per-lead",
        type=float,
        default=20.5,
        help="the simulation's knob (20.5 gives about 20 events per lead)",
    )
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/leadgate-backtest-bench")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference-leads", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="backtest runs; medians reported")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = STAGES[args.stage](args)
        result["peak_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    argv = sys.argv[1:]
    results: dict[str, Any] = {"args": vars(args) | {"stage": None}}
    results["generate_seconds"] = generate(args)
    results["load"] = run_child("load", argv)
    runs = [run_child("backtest", argv) for _ in range(args.repeat)]
    (Path(args.workdir) / "sample.json").write_text(json.dumps(runs[0].pop("sample")))
    for run in runs[1:]:
        run.pop("sample")
    results["backtest_runs"] = runs
    results["backtest"] = {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": statistics.median(r["peak_mb"] for r in runs),
        "steps": {k: statistics.median(r["steps"][k] for r in runs) for k in runs[0]["steps"]},
    }
    results["reference"] = run_child("reference", argv)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = report(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"backtest-bench-{args.leads}-{stamp}.json"
    out.write_text(json.dumps(results | {"table": text.splitlines()}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
