"""Running statistics in float64 on the CPU: mean and variance, and an observation whitener.

Statistics stay on the CPU in float64 so that they are device-independent and
accurate over millions of samples; they are moved to the input's device only
when applied. Every ``state_dict`` holds tensors only, so checkpoints load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

_CPU = torch.device("cpu")
_F64 = torch.float64


def to_cpu64(x: torch.Tensor) -> torch.Tensor:
    """Return a detached float64 CPU copy-or-view of ``x`` for statistics."""
    return x.detach().to(device=_CPU, dtype=_F64)


def check_state_keys(state: Mapping[str, torch.Tensor], expected: set[str], owner: str) -> None:
    """Raise ``ValueError`` if ``state`` does not have exactly the ``expected`` keys."""
    """Raise ``ValueError`` if ``state`` does not have exactly the ``expected`` keys."""
    keys = set(state)
    if keys != expected:
        missing = sorted(expected - keys)
        unexpected = sorted(keys - expected)
        raise ValueError(
            f"{owner} state_dict mismatch: missing keys {missing}, unexpected keys {unexpected}"
        )


class RunningMeanStd:
    """Running mean and (population) variance over a batch dimension.

    Batches are merged with the parallel algorithm of Chan et al. (1979), which is
    exact for any split of the data into batches. Before the first update the mean is
    0 and the variance 1, so normalising with fresh statistics is (nearly) the identity.
    """

    def __init__(self, shape: Sequence[int] = ()) -> None:
        """Create empty statistics for samples of the given ``shape``.

        Args:
            shape: Shape of one sample; ``()`` for scalars.
        """
        self._shape = torch.Size(shape)
        self._mean = torch.zeros(self._shape, dtype=_F64)
        self._var = torch.ones(self._shape, dtype=_F64)
        self._count = torch.zeros((), dtype=_F64)

    @property
    def shape(self) -> torch.Size:
        """Shape of one sample."""
        return self._shape

    @property
    def mean(self) -> torch.Tensor:
        """Running mean (float64, CPU)."""
        return self._mean

    @property
    def var(self) -> torch.Tensor:
        """Running population variance (float64, CPU)."""
        return self._var

    @property
    def std(self) -> torch.Tensor:
        """Running standard deviation, ``sqrt(var)`` (float64, CPU)."""
        return self._var.sqrt()

    @property
    def count(self) -> float:
        """Number of samples seen so far."""
        return float(self._count.item())

    def update(self, x: torch.Tensor) -> None:
        """Merge a batch of samples into the statistics.

        Args:
            x: Samples of shape ``(N, *shape)`` on any device and of any float dtype.

        Raises:
            ValueError: If ``x`` does not have shape ``(N, *shape)``.
        """
        if x.dim() != len(self._shape) + 1 or x.shape[1:] != self._shape:
            raise ValueError(
                f"expected a batch of shape (N, {', '.join(map(str, self._shape))}), "
                f"got {tuple(x.shape)}"
            )
        n = x.shape[0]
        if n == 0:
            return
        batch = to_cpu64(x)
        batch_mean = batch.mean(dim=0)
        batch_var = batch.var(dim=0, correction=0)
        self._merge(batch_mean, batch_var, float(n))

    def _merge(self, batch_mean: torch.Tensor, batch_var: torch.Tensor, n: float) -> None:
        """Combine the moments of a batch of ``n`` samples with the running ones."""
        count = float(self._count.item())
        total = count + n
        delta = batch_mean - self._mean
        m2 = self._var * count + batch_var * n + delta.square() * (count * n / total)
        self._mean = self._mean + delta * (n / total)
        self._var = m2 / total
        self._count = torch.tensor(total, dtype=_F64)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the statistics as CPU tensors (copies)."""
        return {
            "mean": self._mean.clone(),
            "var": self._var.clone(),
            "count": self._count.clone(),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore statistics saved by :meth:`state_dict`.

        Args:
            state: Mapping with ``mean``, ``var`` and ``count`` tensors.

        Raises:
            ValueError: If keys or shapes do not match this instance.
        """
        check_state_keys(state, {"mean", "var", "count"}, type(self).__name__)
        mean, var, count = state["mean"], state["var"], state["count"]
        if mean.shape != self._shape or var.shape != self._shape or count.numel() != 1:
            raise ValueError(
                f"{type(self).__name__} state_dict has shapes mean={tuple(mean.shape)}, "
                f"var={tuple(var.shape)}, count={tuple(count.shape)}; "
                f"expected sample shape {tuple(self._shape)}"
            )
        self._mean = to_cpu64(mean).clone()
        self._var = to_cpu64(var).clone()
        self._count = to_cpu64(count).reshape(()).clone()


class ObservationNormalizer:
    """Whiten observations with running statistics and clip them (RND's input)."""

    def __init__(self, shape: Sequence[int], clip: float = 5.0, eps: float = 1e-8) -> None:
        """Create a normaliser with empty statistics.

        Args:
            shape: Shape of one observation.
            clip: Normalised values are clamped to ``[-clip, clip]``.
            eps: Lower bound on the std, for constant features.

        Raises:
            ValueError: If ``clip`` is not positive.
        """
        if clip <= 0:
            raise ValueError(f"clip must be positive, got {clip}")
        self.clip = clip
        self.eps = eps
        self.rms = RunningMeanStd(shape)
        # normalize() runs every step; keep float32 copies per device until the next update.
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(self, x: torch.Tensor) -> None:
        """Merge observations into the statistics.

        Args:
            x: A batch ``(N, *shape)`` or a single observation of shape ``shape``.
        """
        if x.shape == self.rms.shape:
            x = x.unsqueeze(0)
        self.rms.update(x)
        self._cache.clear()

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Return float32 (mean, std) on ``device``."""
        cached = self._cache.get(device)
        if cached is None:
            std = self.rms.std.clamp_min(self.eps)
            cached = (
                self.rms.mean.to(device=device, dtype=torch.float32),
                std.to(device=device, dtype=torch.float32),
            )
            self._cache[device] = cached
        return cached

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``((x - mean) / std).clamp(-clip, clip)`` as float32 on ``x``'s device.

        Args:
            x: Observations whose trailing dimensions equal ``shape``.
        """
        mean, std = self._stats(x.device)
        return ((x.to(torch.float32) - mean) / std).clamp(-self.clip, self.clip)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the running statistics as CPU tensors."""
        return self.rms.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore statistics saved by :meth:`state_dict`.

        Args:
            state: Mapping with ``mean``, ``var`` and ``count`` tensors.
        """
        self.rms.load_state_dict(state)
        self._cache.clear()
