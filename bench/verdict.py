"""One way for every bench to judge a ratio against its target, so that bench/report.py can
gather the verdicts of all of them (TOKENDESK_BENCH_VERDICTS names a JSON-lines file)."""

from __future__ import annotations

import json
import os


def judge(bench: str, figure: str, ratio: float, op: str, bound: float) -> str:
    """`ratio` against `op bound` (op is "≤" or "≥"): the text to print, and recorded."""
    met = ratio <= bound if op == "≤" else ratio >= bound
    path = os.environ.get("TOKENDESK_BENCH_VERDICTS")
    if path:
        record = {"bench": bench, "figure": figure, "ratio": ratio, "target": f"{op} {bound}"}
        with open(path, "a", encoding="utf-8") as verdicts:
            verdicts.write(json.dumps(record | {"met": met}, ensure_ascii=False) + "\n")
    return f"target {op} {bound}: {'met' if met else 'MISSED'}"
