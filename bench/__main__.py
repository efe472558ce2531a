"""Run the benchmarks and print a Markdown table; JSON and Markdown go to bench/results/.

Each benchmark module in this folder exposes ``run() -> list[dict]`` whose rows
hold ``name``, ``value``, ``unit`` and the ``command`` that reproduces them.
Usage: ``python -m bench`` (all) or ``python -m bench startup world_speed``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

BENCHMARKS = [
    "startup",
    "world_speed",
    "training_speed",
    "sb3_peer",
    "realtime",
    "beat",
    "soak",
    "jepa",
    "representation",
    "cores",
    "reference_step",
    "reference_path",
    "sweep_overhead",
]
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
    # Other load on the machine when the benchmarks ended (1, 5, 15 minutes).
    load_average = os.getloadavg()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "cuda": _cuda_device(),
        "load_average": load_average,
        "python": platform.python_version(),
    }
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    gpu = f", GPU {meta['cuda']}" if meta["cuda"] else ", no GPU"
    load = ", ".join(f"{x:.2f}" for x in load_average)
    heading = (
        f"{meta['date']} on {meta['machine']} ({meta['cpus']} CPUs{gpu}, load {load}), "
        f"Python {meta['python']}"
    )
    markdown = f"{heading}\n\n{table(rows)}\n"
    (RESULTS / "latest.md").write_text(markdown)
    print(f"\n{markdown}")
    print(f"JSON: {RESULTS / 'latest.json'}, Markdown: {RESULTS / 'latest.md'}")
    return 0


def _cuda_device() -> str | None:
    """Return the name of the first CUDA device, or None where torch sees none."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def table(rows: list[dict[str, object]]) -> str:
    """Return the rows as a Markdown table (benchmark, value, unit, command)."""
    lines = ["| benchmark | value | unit | command |", "|---|---:|---|---|"]
    for row in rows:
        shown = shown_value(row["value"])
        lines.append(f"| {row['name']} | {shown} | {row['unit']} | `{row['command']}` |")
    return "\n".join(lines)


def shown_value(value: object) -> str:
    """Return a number as a reader expects it: ``1,030`` rather than ``1.03e+03``, ``0.709``."""
    if not isinstance(value, float):
        return str(value)
    # Three significant digits, but never an exponent for the sizes benchmarks produce.
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
