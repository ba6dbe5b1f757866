"""Run every benchmark script of this folder, one after another (``make bench``).

Each ``bench_*.py`` is a standalone script that writes ``benchmarks/results/<topic>.csv``;
calibration studies (``calibration_*.py``, many seeds, minutes each) run only with
``--calibration``. A script that fails does not stop the others; the exit code is non-zero
if any failed.

The scale ladder (``bench_scale.py``) runs here at 1 M shipments only (a few minutes); the
10 M and 50 M rungs take most of an hour and run on their own:
``python benchmarks/bench_scale.py --sizes 1e7,5e7 --resume``.

Run:  .venv/bin/python benchmarks/run.py [--calibration] [--only campaigns,causal]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: arguments a script gets under ``make bench`` (the default of a standalone run is bigger)
BENCH_ARGS = {"bench_scale.py": ["--sizes", "1e6"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", action="store_true", help="also run calibration_*.py")
    parser.add_argument("--only", default="", help="comma-separated topics, e.g. causal,survey")
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.calibration:
        scripts += sorted(HERE.glob("calibration_*.py"))
    if args.only:
        wanted = {t.strip() for t in args.only.split(",") if t.strip()}
        scripts = [s for s in scripts if s.stem.split("_", 1)[1] in wanted]

    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *BENCH_ARGS.get(script.name, [])],
                             cwd=HERE.parent)
        print(f"== {script.name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
