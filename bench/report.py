"""Every benchmark in one run, and one table of the ratios they judge (and of the figures
they report without a target).

Run with `make report` (`--quick` for the short variants, `--show` to print each bench's
own output too). Each bench records its verdicts through bench/verdict.py; this script
runs them one after another, so they never compete with each other for the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Each bench, with the arguments it is run with here.
BENCHES: dict[str, tuple[str, ...]] = {
    "store": (),
    "list": (),
    "home": (),
    "authcheck": (),
    "rotation": (),
    "metrics": (),
    "leakscan": (),
    "leakburst": (),
    "scheduler": (),
    "instances": (),
    "mixedload": ("--postgres",),
}


def run(bench: str, *, quick: bool, show: bool, verdicts: Path) -> tuple[int, float]:
    started = time.monotonic()
    command = [sys.executable, str(HERE / f"{bench}.py"), *BENCHES[bench]]
    command += ["--quick"] if quick else []
    environment = os.environ | {"TOKENDESK_BENCH_VERDICTS": str(verdicts)}
    result = subprocess.run(command, env=environment, capture_output=not show, text=True)
    if result.returncode != 0 and not show:
        print(result.stdout + result.stderr, file=sys.stderr)
    return result.returncode, time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short variant of each bench")
    parser.add_argument("--show", action="store_true", help="print each bench's own output")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tokendesk-report-") as directory:
        verdicts = Path(directory) / "verdicts.jsonl"
        verdicts.touch()
        outcomes = {
            bench: run(bench, quick=arguments.quick, show=arguments.show, verdicts=verdicts)
            for bench in BENCHES
        }
        records = [json.loads(line) for line in verdicts.read_text().splitlines() if line]
    load = os.getloadavg()
    print(
        f"\nToken Desk benchmark report{' (quick)' if arguments.quick else ''}:"
        f" python {platform.python_version()}, {os.cpu_count()} cores,"
        f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    width = max((len(record["figure"]) for record in records), default=6) + 2
    print(f"  {'bench':<10}{'figure':<{width}}{'ratio':>7}  {'target':<8}  verdict")
    for record in records:
        verdict = {True: "met", False: "MISSED", None: "reported"}[record["met"]]
        print(
            f"  {record['bench']:<10}{record['figure']:<{width}}{record['ratio']:>7.2f}"
            f"  {record['target']:<8}  {verdict}"
        )
    for bench, (code, seconds) in outcomes.items():
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"  {bench}.py: {status}, {seconds:.0f} s")
    failed = any(code for code, _ in outcomes.values())
    missed = any(record["met"] is False for record in records)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
