"""Cost of the `jepa` representation: training per frame and encoding latency per frame.

Training cost per frame is the median optimiser step times the reference schedule's
steps per frame (a full buffer of 512 gives 16 steps of 32 every 128 new frames:
0.125 steps per frame). Encoding latency is the median of `encode` on one frame.
The reference size runs only a few steps; the small configuration a few more.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from pamiqx_jepa.plugin import JEPAOptions, JEPAPlugin
from pamiqx_jepa.preprocess import resize_crop
from pamiqx_jepa.representation import JEPARepresentation

from pamiqx.api import BuildContext, ObservationSpec

COMMAND = "python -m bench jepa"
# sim-maze's default frames; the reference crop (144) upsamples them.
FRAME = ObservationSpec((64, 64, 3), "uint8", "image")


def _median_time(action: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    action()  # warm-up: lazy initialisation, allocator, kernels
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(options: JEPAOptions, device: str, steps: int, encodes: int) -> tuple[float, float]:
    """Return (seconds per optimiser step, seconds per single-frame encode)."""
    rep: JEPARepresentation = JEPAPlugin().build(
        options, BuildContext("bench", 0, device=device), FRAME
    )
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (options.batch_size, 64, 64, 3), generator=generator)
    frames = frames.to(torch.uint8)
    batch = resize_crop(frames, options.input_size)
    one = frames[:1].to(device)
    cuda = device == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    step = _median_time(lambda: rep.train_batch(batch), steps, sync)

    def encode() -> torch.Tensor:
        with torch.inference_mode():
            return rep.encode(one)

    latency = _median_time(encode, encodes, sync)
    return step, latency


def _configurations() -> list[tuple[str, str, JEPAOptions, int, int]]:
    configs = [
        ("reference", "cpu", JEPAOptions(), 3, 5),
        ("small", "cpu", JEPAOptions.small(), 10, 50),
    ]
    if torch.cuda.is_available():
        configs += [
            ("reference", "cuda", JEPAOptions(), 20, 100),
            ("reference bf16", "cuda", JEPAOptions(precision="bf16"), 20, 100),
            ("small", "cuda", JEPAOptions.small(), 20, 100),
        ]
    return configs


def run() -> list[dict[str, object]]:
    """Return per-step, per-frame training and per-frame encoding times for each configuration."""
    rows: list[dict[str, object]] = []
    for label, device, options, steps, encodes in _configurations():
        step, latency = _measure(options, device, steps, encodes)
        steps_per_frame = (options.buffer_size // options.batch_size) / options.train_every
        name = f"jepa {label} ({device})"
        rows += [
            {
                "name": f"{name}: optimiser step, batch {options.batch_size} (median of {steps})",
                "value": step * 1e3,
                "unit": "ms",
                "command": COMMAND,
            },
            {
                "name": f"{name}: training cost per frame ({steps_per_frame:g} steps/frame)",
                "value": step * steps_per_frame * 1e3,
                "unit": "ms",
                "command": COMMAND,
            },
            {
                "name": f"{name}: encode latency, one frame (median of {encodes})",
                "value": latency * 1e3,
                "unit": "ms",
                "command": COMMAND,
            },
        ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
