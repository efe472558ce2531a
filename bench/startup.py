"""Start-up time of `pamiqx list-plugins` and `pamiqx validate` (target: under 1.5 s)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAMIQX = str(Path(sys.executable).with_name("pamiqx"))


def _wall(args: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[dict[str, object]]:
    """Return the median wall time of each command over 5 runs."""
    rows: list[dict[str, object]] = []
    for label, args in [
        ("pamiqx list-plugins wall time (median of 5)", [PAMIQX, "list-plugins"]),
        (
            "pamiqx validate quickstart wall time (median of 5)",
            [PAMIQX, "validate", "experiments/quickstart.toml"],
        ),
    ]:
        rows.append(
            {
                "name": label,
                "value": _wall(args),
                "unit": "s",
                "command": " ".join(["pamiqx", *args[1:]]),
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
