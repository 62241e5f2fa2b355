"""Benchmark: learn a points model on X Education and measure it, end to end.

    .venv/bin/python bench/learn_bench.py             # 5 runs, the median counts
    .venv/bin/python bench/learn_bench.py --runs 3

Each run is ``leadgate learn`` in a fresh child process (Python start-up and imports
included), as a user would run it: read the 9,240 leads with the example mapping,
score them with the example model as of their outcome, split 70/30 (stratified, seed 7),
build the features, choose the regularisation by 5-fold cross-validation, add pairs,
refit, round to integer points, calibrate, choose thresholds, write the draft, and
measure base model, learned points and logistic regression on the held-out 30%.
The data is read from ``../shared/data/`` beside the repository.

Results are printed and written as JSON to bench/results/ (not in git).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "xeducation_leads.csv"
EXAMPLE = ROOT / "examples" / "xeducation"
LEADGATE = Path(sys.executable).with_name("leadgate")


def run_once(out: Path) -> tuple[float, str]:
    argv = [
        str(LEADGATE), "learn", "--leads", str(DATA), "--mapping", str(EXAMPLE / "mapping.yaml"),
        "--model", str(EXAMPLE / "model.yaml"), "--outcome", "Converted", "--out", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"leadgate learn failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"no data at {DATA}")
    walls: list[float] = []
    report = ""
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            wall, report = run_once(Path(tmp) / f"draft{i}.yaml")
            walls.append(wall)
            print(f"run {i + 1}: {wall:.2f} s", flush=True)
    median = statistics.median(walls)
    print(report)
    print(f"leadgate learn on X Education: median {median:.2f} s of {args.runs} runs "
          f"(min {min(walls):.2f}, max {max(walls):.2f}); target under 10 s")  # fmt: skip
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {"runs": walls, "median_s": median, "at": stamp, "report": report}
    (results / f"learn-{stamp}.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
