"""Intrinsic-reward normalisation and advantage mixing, as in RND (Burda et al., 2018).

Curiosity rewards drift in scale as the predictor learns, so they are divided by a
running estimate of the standard deviation of their *discounted returns* (not of the
rewards themselves), and the mean is never subtracted: a constant shift would change
the sign of the exploration bonus. Observations fed to the RND networks are whitened
and clipped with running statistics.

All statistics live on the CPU in float64 so that they are device-independent and
accurate over millions of samples; they are moved to the input's device only when
applied. Every ``state_dict`` holds tensors only, so checkpoints load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

_CPU = torch.device("cpu")
_F64 = torch.float64


def _to_cpu64(x: torch.Tensor) -> torch.Tensor:
    """Return a detached float64 CPU copy-or-view of ``x`` for statistics."""
    return x.detach().to(device=_CPU, dtype=_F64)


def _check_keys(state: Mapping[str, torch.Tensor], expected: set[str], owner: str) -> None:
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
        batch = _to_cpu64(x)
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
        _check_keys(state, {"mean", "var", "count"}, type(self).__name__)
        mean, var, count = state["mean"], state["var"], state["count"]
        if mean.shape != self._shape or var.shape != self._shape or count.numel() != 1:
            raise ValueError(
                f"{type(self).__name__} state_dict has shapes mean={tuple(mean.shape)}, "
                f"var={tuple(var.shape)}, count={tuple(count.shape)}; "
                f"expected sample shape {tuple(self._shape)}"
            )
        self._mean = _to_cpu64(mean).clone()
        self._var = _to_cpu64(var).clone()
        self._count = _to_cpu64(count).reshape(()).clone()


class RewardForwardFilter:
    """Per-environment running discounted return ``R_t = gamma * R_{t-1} + r_t``.

    The state carries over between calls, so consecutive rollouts form one
    never-ending (non-episodic) stream per environment, as in RND.
    """

    def __init__(self, gamma: float) -> None:
        """Create a filter with no history.

        Args:
            gamma: Discount factor in ``[0, 1]``.

        Raises:
            ValueError: If ``gamma`` is outside ``[0, 1]``.
        """
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = gamma
        # None until the first call fixes the number of environments.
        self._returns: torch.Tensor | None = None

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        """Filter a time-major rollout.

        Args:
            rewards: Rewards of shape ``(T, E)``.

        Returns:
            Filtered returns of shape ``(T, E)``, float64 on the CPU.

        Raises:
            ValueError: If ``rewards`` is not 2-D or ``E`` differs from earlier calls.
        """
        if rewards.dim() != 2:
            raise ValueError(f"expected rewards of shape (T, E), got {tuple(rewards.shape)}")
        r = _to_cpu64(rewards)
        n_envs = r.shape[1]
        if self._returns is None:
            self._returns = torch.zeros(n_envs, dtype=_F64)
        elif self._returns.shape[0] != n_envs:
            raise ValueError(
                f"number of environments changed from {self._returns.shape[0]} to {n_envs}"
            )
        out = torch.empty_like(r)
        running = self._returns
        for t in range(r.shape[0]):
            running = self.gamma * running + r[t]
            out[t] = running
        self._returns = running
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the running returns; an empty tensor means "no history yet"."""
        returns = self._returns if self._returns is not None else torch.zeros(0, dtype=_F64)
        return {"returns": returns.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the running returns saved by :meth:`state_dict`.

        Args:
            state: Mapping with a 1-D ``returns`` tensor.

        Raises:
            ValueError: If keys or shapes do not match.
        """
        _check_keys(state, {"returns"}, type(self).__name__)
        returns = state["returns"]
        if returns.dim() != 1:
            raise ValueError(f"returns must be 1-D, got shape {tuple(returns.shape)}")
        self._returns = _to_cpu64(returns).clone() if returns.numel() > 0 else None


class IntrinsicRewardNormalizer:
    """Scale intrinsic rewards by the running std of their discounted returns.

    The mean is never subtracted, so the bonus keeps its sign; only its scale is
    made stationary.
    """

    def __init__(self, gamma: float = 0.99, eps: float = 1e-8) -> None:
        """Create a normaliser with empty statistics.

        Args:
            gamma: Discount of the forward filter (the intrinsic discount in RND).
            eps: Added to the std to avoid dividing by zero.
        """
        self.eps = eps
        self.filter = RewardForwardFilter(gamma)
        self.rms = RunningMeanStd(())

    @property
    def std(self) -> float:
        """Current divisor applied to rewards (1 until there are two samples)."""
        # With fewer than two samples the variance is 0 or the prior, not an estimate.
        if self.rms.count < 2:
            return 1.0
        return float(self.rms.std.item()) + self.eps

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        """Update the statistics with a rollout and return its scaled rewards.

        Args:
            rewards: Intrinsic rewards of shape ``(T, E)``, time-major.

        Returns:
            ``rewards / std`` with the same shape, dtype and device as ``rewards``.
        """
        returns = self.filter(rewards)
        self.rms.update(returns.reshape(-1))
        return rewards / self.std

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return filter and statistics state as a flat dict of tensors."""
        state = {f"rms.{k}": v for k, v in self.rms.state_dict().items()}
        state.update({f"filter.{k}": v for k, v in self.filter.state_dict().items()})
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore state saved by :meth:`state_dict`.

        Args:
            state: Flat mapping with ``rms.*`` and ``filter.*`` tensors.

        Raises:
            ValueError: If keys or shapes do not match.
        """
        self.rms.load_state_dict(
            {k.removeprefix("rms."): v for k, v in state.items() if k.startswith("rms.")}
        )
        self.filter.load_state_dict(
            {k.removeprefix("filter."): v for k, v in state.items() if k.startswith("filter.")}
        )
        unknown = [k for k in state if not k.startswith(("rms.", "filter."))]
        if unknown:
            raise ValueError(f"{type(self).__name__} state_dict has unexpected keys {unknown}")


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


def mix_advantages(
    adv_ext: torch.Tensor, adv_int: torch.Tensor, ext_coef: float, int_coef: float
) -> torch.Tensor:
    """Combine extrinsic and intrinsic advantages linearly.

    Args:
        adv_ext: Advantages of the extrinsic value stream.
        adv_int: Advantages of the intrinsic value stream (same shape).
        ext_coef: Weight of the extrinsic stream (2.0 in RND).
        int_coef: Weight of the intrinsic stream (1.0 in RND).

    Returns:
        ``ext_coef * adv_ext + int_coef * adv_int``.
    """
    return ext_coef * adv_ext + int_coef * adv_int
