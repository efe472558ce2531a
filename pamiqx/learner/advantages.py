"""From rewards to advantages, read top to bottom: normalise, GAE per stream, mix.

1. :class:`IntrinsicRewardNormalizer` divides intrinsic rewards by a running
   estimate of the spread of their *discounted returns* (as in RND, Burda et al.,
   2018); the mean is never subtracted, which would flip the bonus's sign.
2. :func:`compute_gae` turns each stream into advantages and value targets
   (Schulman et al., 2016): the extrinsic stream is episodic, the intrinsic one
   never ends.
3. :func:`mix_advantages` weighs the streams; :func:`normalize_advantages`
   centres (unless ``advantage_centering`` is off) and scales the mixture.

:func:`compute_advantages` is that sequence for one rollout;
``intrinsic_normalisation = "none"`` skips step 1 (the reference). Replay
windows (:mod:`pamiqx.learner.replay`) scale rewards as they arrive and run
:func:`stream_advantages` per window.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import torch

from pamiqx.api.statistics import RunningMeanStd, check_state_keys, to_cpu64
from pamiqx.learner.options import PPOOptions

_F64 = torch.float64


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
        r = to_cpu64(rewards)
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
        check_state_keys(state, {"returns"}, type(self).__name__)
        returns = state["returns"]
        if returns.dim() != 1:
            raise ValueError(f"returns must be 1-D, got shape {tuple(returns.shape)}")
        self._returns = to_cpu64(returns).clone() if returns.numel() > 0 else None


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


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    episodic: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016).

    ``delta_t = r_t + gamma * V_{t+1} * (1 - d_t) - V_t`` and
    ``A_t = delta_t + gamma * lam * (1 - d_t) * A_{t+1}``, where ``V_T`` is
    ``last_value``. Inputs are detached: advantages and returns are targets.

    Args:
        rewards: Rewards, shape ``(T, E)``.
        values: Value estimates of the observations at each step, shape ``(T, E)``.
        dones: 1 (or True) where the episode ended at step ``t``, so step ``t`` does
            not bootstrap from ``t + 1``; shape ``(T, E)``.
        last_value: Value of the observation after the last step, shape ``(E,)``.
        gamma: Discount factor.
        lam: GAE lambda.
        episodic: If False, ``dones`` is ignored and the stream is treated as never
            ending (the intrinsic stream in RND).

    Returns:
        ``(advantages, returns)``, both shaped like ``values``, with
        ``returns = advantages + values``.

    Raises:
        ValueError: If the shapes do not agree.
    """
    if rewards.shape != values.shape or dones.shape != values.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and "
            f"dones {tuple(dones.shape)} must have the same shape (T, E)"
        )
    if values.dim() == 0 or last_value.shape != values.shape[1:]:
        raise ValueError(
            f"last_value must have shape {tuple(values.shape[1:])}, got {tuple(last_value.shape)}"
        )
    with torch.no_grad():
        r = rewards.detach()
        v = values.detach()
        # Non-episodic streams bootstrap through episode ends (RND's intrinsic return).
        not_done = 1.0 - dones.detach().to(v.dtype) if episodic else torch.ones_like(v)
        advantages = torch.empty_like(v)
        next_value = last_value.detach().to(v.dtype)
        next_adv = torch.zeros_like(next_value)
        for t in range(v.shape[0] - 1, -1, -1):
            delta = r[t] + gamma * next_value * not_done[t] - v[t]
            next_adv = delta + (gamma * lam) * not_done[t] * next_adv
            advantages[t] = next_adv
            next_value = v[t]
        return advantages, advantages + v


def normalize_advantages(adv: torch.Tensor, eps: float = 1e-8, center: bool = True) -> torch.Tensor:
    """Scale advantages to std 1 over all elements, and shift them to mean 0 if asked.

    Args:
        adv: Advantages of any shape.
        eps: Added to the std to avoid dividing by zero.
        center: Subtract the mean first (False: only divide by the std, as the
            reference experiments do, which keeps each advantage's sign).

    Returns:
        Normalised advantages; with a single element only the mean is removed
        (its std is undefined) or, without centring, it is returned unchanged; an
        empty tensor is returned unchanged.
    """
    if adv.numel() == 0:
        return adv
    if adv.numel() == 1:
        return adv - adv.mean() if center else adv
    if not center:
        return adv / (adv.std() + eps)
    return (adv - adv.mean()) / (adv.std() + eps)


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


@attrs.frozen
class Advantages:
    """What the PPO epochs train on, for one rollout.

    Attributes:
        advantages: ``(T, E)`` mixed (and, if asked, normalised) advantages.
        returns: ``(T, E)`` value targets per stream (``ext``, ``int``).
        intrinsic_normalized: ``(T, E)`` the intrinsic rewards after normalisation.
    """

    advantages: torch.Tensor
    returns: dict[str, torch.Tensor]
    intrinsic_normalized: torch.Tensor


def scale_intrinsic(
    intrinsic: torch.Tensor, normalizer: IntrinsicRewardNormalizer, options: PPOOptions
) -> torch.Tensor:
    """Return the intrinsic rewards the advantages are computed from.

    Args:
        intrinsic: ``(T, E)`` raw intrinsic rewards from the curiosity.
        normalizer: The running return normaliser (updated only when it is used).
        options: ``intrinsic_normalisation`` says whether to use it.

    Returns:
        ``(T, E)`` float rewards: divided by the running std of their discounted
        return (``return``), or raw (``none``, the reference).
    """
    if options.intrinsic_normalisation == "none":
        return intrinsic.float()
    return normalizer.normalize(intrinsic.float())


def stream_advantages(
    rewards_ext: torch.Tensor,
    rewards_int: torch.Tensor,
    values: Mapping[str, torch.Tensor],
    last_values: Mapping[str, torch.Tensor],
    dones: torch.Tensor,
    options: PPOOptions,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run GAE on each stream and mix them (no normalisation).

    Args:
        rewards_ext: ``(T, E)`` extrinsic rewards.
        rewards_int: ``(T, E)`` intrinsic rewards, already scaled as wanted.
        values: ``(T, E)`` value estimates per stream at collection time.
        last_values: ``(E,)`` value estimates of the step after the last one per stream.
        dones: ``(T, E)`` the action ended an episode.
        options: Discounts, lambda and stream weights.

    Returns:
        The ``(T, E)`` mixed advantages and the value targets per stream.
    """
    done = dones.float()
    adv_ext, ret_ext = compute_gae(
        rewards_ext,
        values["ext"],
        done,
        last_values["ext"],
        options.gamma_ext,
        options.gae_lambda,
        episodic=True,
    )
    adv_int, ret_int = compute_gae(
        rewards_int,
        values["int"],
        done,
        last_values["int"],
        options.gamma_int,
        options.gae_lambda,
        episodic=False,
    )
    mixed = mix_advantages(adv_ext, adv_int, options.ext_coef, options.int_coef)
    return mixed, {"ext": ret_ext, "int": ret_int}


def compute_advantages(
    rewards_ext: torch.Tensor,
    intrinsic: torch.Tensor,
    values: Mapping[str, torch.Tensor],
    last_values: Mapping[str, torch.Tensor],
    dones: torch.Tensor,
    normalizer: IntrinsicRewardNormalizer,
    options: PPOOptions,
) -> Advantages:
    """Scale the intrinsic rewards, run GAE on each stream, mix the streams, normalise.

    Args:
        rewards_ext: ``(T, E)`` extrinsic rewards.
        intrinsic: ``(T, E)`` raw intrinsic rewards from the curiosity.
        values: ``(T, E)`` value estimates per stream at collection time.
        last_values: ``(E,)`` value estimates after the rollout per stream.
        dones: ``(T, E)`` the action ended an episode.
        normalizer: The running intrinsic-reward normaliser (updated here when used).
        options: Discounts, lambda, stream weights and how to normalise.

    Returns:
        The advantages, the value targets and the scaled intrinsic rewards.
    """
    int_norm = scale_intrinsic(intrinsic, normalizer, options)
    mixed, returns = stream_advantages(rewards_ext, int_norm, values, last_values, dones, options)
    if options.normalize_advantages:
        mixed = normalize_advantages(mixed, center=options.advantage_centering)
    return Advantages(mixed, returns, int_norm)
