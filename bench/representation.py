"""The representation stage's cost in a run: the online I-JEPA (small) against ``pixels``.

* The lock-step training loop (``bench.training_speed``'s: sim-maze 64x64, 4 worlds,
  RND) with ``jepa`` in its small configuration and ``token-encoder``, against the same
  loop with ``pixels`` and ``conv-encoder``, measured side by side in one run; the
  ratio is jepa's steps/s over pixels'.
* Real-time control at 10 Hz with training running (``bench.realtime``'s fake world)
  with ``jepa`` small: step latency p50/p99 (the 100 ms interval needs room to spare)
  and control-interval jitter.

``python -m bench representation``.
"""

from __future__ import annotations

from pamiqx_jepa.plugin import SMALL

from bench import realtime
from bench.training_speed import run_json

COMMAND = "python -m bench representation"
# The small configuration of plugins/pamiqx-jepa (JEPAOptions.small), as overrides.
JEPA_SMALL = [
    "representation.plugin=jepa",
    *(f"representation.{key}={value}" for key, value in SMALL.items()),
    "models.encoder.plugin=token-encoder",
    "models.encoder.feature_dim=256",
]


def _loop(extra: list[str]) -> dict[str, float]:
    args = ["-m", "bench.training_speed", "--one", "rnd", "--device", "cpu"]
    for override in extra:
        args += ["--set", override]
    return run_json(args)


def run() -> list[dict[str, object]]:
    """Measure the loop with pixels and with jepa, then real-time latency with jepa."""
    pixels = _loop([])
    jepa = _loop(JEPA_SMALL)
    rows: list[dict[str, object]] = [
        {
            "name": "training loop with 'pixels' (sim-maze 64x64 x4, rnd), cpu",
            "value": pixels["steps_per_second"],
            "unit": "steps/s",
            "command": COMMAND,
        },
        {
            "name": "training loop with 'jepa' small + token-encoder (same loop), cpu",
            "value": jepa["steps_per_second"],
            "unit": "steps/s",
            "command": COMMAND,
        },
        {
            "name": "ratio: loop with 'jepa' small / loop with 'pixels' (side by side)",
            "value": jepa["steps_per_second"] / pixels["steps_per_second"],
            "unit": "x",
            "command": COMMAND,
        },
    ]
    rows += realtime.measure(JEPA_SMALL, label=", jepa small", command=COMMAND)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
