"""Run the benchmarks and print a Markdown table; JSON goes to bench/results/.

Each benchmark module in this folder exposes ``run() -> list[dict]`` whose rows
hold ``name``, ``value``, ``unit`` and the ``command`` that reproduces them.
Usage: ``python -m bench`` (all) or ``python -m bench startup world_speed``.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

BENCHMARKS = ["startup", "world_speed", "training_speed", "realtime"]
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {BENCHMARKS}", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        rows.extend(module.run())
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
    }
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\n{meta['date']} on {meta['machine']}, Python {meta['python']}\n")
    print("| benchmark | value | unit | command |")
    print("|---|---:|---|---|")
    for row in rows:
        value = row["value"]
        shown = f"{value:,.3g}" if isinstance(value, float) else str(value)
        print(f"| {row['name']} | {shown} | {row['unit']} | `{row['command']}` |")
    print(f"\nJSON: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
