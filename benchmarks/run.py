"""Run the benchmarks (``make bench`` = quick, ``make bench-full`` = all sizes).

Each benchmark writes its results under ``benchmarks/results/`` with the machine noted.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    home = Path(".routecast")
    if not (home / "mlflow.db").exists():
        subprocess.run([sys.executable, "-m", "serving.cli", "demo"], check=True)
    route = importlib.import_module("benchmarks.bench_route")
    sys.argv = ["bench_route", "--orders", "500" if args.quick else "3000"]
    route.main()
    try:
        alloc = importlib.import_module("benchmarks.bench_allocator")
    except ModuleNotFoundError:
        return
    sys.argv = ["bench_allocator", *(["--quick"] if args.quick else [])]
    alloc.main()


if __name__ == "__main__":
    main()
