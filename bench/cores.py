"""The ``qlstm`` core over a 256-step window: the parallel scan against a step-by-step loop.

Rows: milliseconds per window (median of a few repetitions after a warm-up; the
multi-second CPU stack rows are one cold measurement each).

* the recurrence alone, ``h_t = a_t h_{t-1} + b_t`` at 256 x 32 x 1024 (one block's
  state): :func:`pamiqx.api.cores.linear_scan` against a Python loop, forward and
  forward + backward;
* the reference stack (8 blocks of width 1024, feed-forward x4), ``forward_window``
  against 256 ``step`` calls, forward and forward + backward, at batch 32 (the
  reference's 32 windows). On the CPU one such window is ~2.2 TFLOP forward, so its
  step loop runs :data:`CPU_LOOP_STEPS` steps scaled to 256 (its backward writes
  every weight's gradient once per step); the four rows take ~2 minutes on 2 cores.
  CUDA rows appear where torch sees a GPU.

``python -m bench cores`` (or ``python -m bench.cores`` for the rows as JSON).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

COMMAND = "python -m bench cores"
STEPS, BATCH, WIDTH = 256, 32, 1024
# On the CPU the stack's step loop runs this many steps and its time is scaled to STEPS:
# its backward writes every weight's gradient once per step (minutes for 256 steps).
CPU_LOOP_STEPS = 32
REPEATS = 3


def _timed(
    fn: Callable[[], object], device: torch.device, repeats: int, warm_up: bool = True
) -> float:
    """Median milliseconds of ``fn`` (after one warm-up call unless ``warm_up`` is False)."""

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return 1e3 * (time.perf_counter() - start)

    if warm_up:
        once()
    return statistics.median(once() for _ in range(repeats))


def _loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # unbind, not a[t]: the backward of indexing would write a full-size zero grad per step.
    h, out = torch.zeros_like(b[0]), []
    for a_t, b_t in zip(a.unbind(0), b.unbind(0), strict=True):
        h = torch.addcmul(b_t, a_t, h)
        out.append(h)
    return torch.stack(out)


def _rows(
    label: str, fn: Callable[[], torch.Tensor], device: torch.device, repeats: int, warm_up: bool
) -> list[dict[str, object]]:
    """Rows for ``fn`` without gradients, and with the backward pass of a scalar of it."""

    def train() -> None:
        fn().square().mean().backward()  # type: ignore[no-untyped-call]

    with torch.no_grad():
        forward = _timed(fn, device, repeats, warm_up)
    both = _timed(train, device, repeats, warm_up)
    return [_row(f"{label}, forward", forward), _row(f"{label}, forward + backward", both)]


def _recurrence_rows(device: torch.device, repeats: int) -> list[dict[str, object]]:
    from pamiqx.api.cores import linear_scan

    a = torch.rand(STEPS, BATCH, WIDTH, device=device, requires_grad=True)
    b = torch.randn(STEPS, BATCH, WIDTH, device=device, requires_grad=True)
    where = f"{STEPS} steps x batch {BATCH} x {WIDTH}, {device.type}"
    return [
        *_rows(
            f"recurrence alone, parallel scan ({where})",
            partial(linear_scan, a, b),
            device,
            repeats,
            True,
        ),
        *_rows(
            f"recurrence alone, step-by-step loop ({where})",
            partial(_loop, a, b),
            device,
            repeats,
            True,
        ),
    ]


def _stack_rows(
    device: torch.device, batch: int, repeats: int, warm_up: bool = True, loop_steps: int = STEPS
) -> list[dict[str, object]]:
    from pamiqx.api.cores import REFERENCE_SIZES, RecurrentStack

    torch.manual_seed(0)
    stack = RecurrentStack("qlstm", WIDTH, REFERENCE_SIZES["qlstm"]).to(device)
    x = torch.randn(STEPS, batch, WIDTH, device=device)
    state = stack.initial_state(batch, device)
    resets = torch.zeros(STEPS, batch, device=device)
    resets[STEPS // 2] = 1.0

    def window() -> torch.Tensor:
        return stack.forward_window(x, state, resets)[0]

    def stepped() -> torch.Tensor:
        h, out = state, []
        for t in range(loop_steps):
            y, h = stack.step(x[t], h, resets[t])
            out.append(y)
        return torch.stack(out)

    where = f"qlstm 8x1024, {STEPS} steps x batch {batch}, {device.type}"
    loop_rows = _rows(f"step-by-step loop ({where})", stepped, device, repeats, warm_up)
    if loop_steps != STEPS:
        for row in loop_rows:
            row["value"] = round(float(row["value"]) * STEPS / loop_steps, 2)  # type: ignore[arg-type]
            row["name"] = f"{row['name']} (scaled from {loop_steps} steps)"
    return [
        *_rows(f"forward_window, parallel scan ({where})", window, device, repeats, warm_up),
        *loop_rows,
    ]


def _row(name: str, ms: float) -> dict[str, object]:
    return {"name": name, "value": round(ms, 2), "unit": "ms", "command": COMMAND}


def run() -> list[dict[str, object]]:
    """Measure the scan and the stack on the CPU, and on CUDA where torch sees a GPU."""
    cpu = torch.device("cpu")
    rows = _recurrence_rows(cpu, REPEATS)
    rows += _stack_rows(cpu, BATCH, 1, warm_up=False, loop_steps=CPU_LOOP_STEPS)
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        rows += _recurrence_rows(cuda, 10)
        rows += _stack_rows(cuda, BATCH, 5)
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
