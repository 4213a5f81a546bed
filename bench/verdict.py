"""One way for every bench to judge a ratio against its target, so that bench/report.py can
gather the verdicts of all of them (TOKENDESK_BENCH_VERDICTS names a JSON-lines file)."""

from __future__ import annotations

import json
import os


def judge(bench: str, figure: str, ratio: float, op: str, bound: float) -> str:
    """`ratio` against `op bound` (op is "≤" or "≥"): the text to print, and recorded."""
    met = ratio <= bound if op == "≤" else ratio >= bound
    _record(bench, figure, ratio, f"{op} {bound}", met)
    return f"target {op} {bound}: {'met' if met else 'MISSED'}"


def inform(bench: str, figure: str, ratio: float) -> str:
    """`ratio`, a figure reported without a target: the text to print, and recorded."""
    _record(bench, figure, ratio, "none", None)
    return "reported"


def _record(bench: str, figure: str, ratio: float, target: str, met: bool | None) -> None:
    path = os.environ.get("TOKENDESK_BENCH_VERDICTS")
    if path:
        record = {"bench": bench, "figure": figure, "ratio": ratio, "target": target, "met": met}
        with open(path, "a", encoding="utf-8") as verdicts:
            verdicts.write(json.dumps(record, ensure_ascii=False) + "\n")
