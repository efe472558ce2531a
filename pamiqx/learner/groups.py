"""Policy groups: GAE over each group's own acting steps, and each group's PPO terms.

A policy network may split its internal action into groups that are policies of
their own (:attr:`pamiqx.api.PolicyNetwork.internal_groups`; group 0 is the
world's action, trained on the ``ext`` and ``int`` streams as always). Group
``g`` acts at some steps only and returns, at every step, its reward, its value
and whether it acts (:attr:`pamiqx.api.PolicyStep.group_rewards`, ...).

Alignment. pamiqx credits the intrinsic reward scored at step ``t + 1`` (the
reward of the transition into ``o_{t+1}``) to the action ``a_t``. A group's step
is the span between two of its acting steps ``t_k < t_{k+1}``, so the group's
action chosen at ``t_k`` is credited with the reward the group scores at
``t_{k+1}`` (the outcome of the period that ends there) and bootstraps from the
group's value at ``t_{k+1}``; ``gamma_int`` discounts once per group step, as in
the reference, whose per-layer trainers see only their layer's steps
(``compute_advantage`` over the layer's own buffer).

* An episode start ``s`` with ``t_k < s <= t_{k+1}`` (or after ``t_k`` when the
  group never acts again in the stored steps) makes the group step terminal: no
  bootstrap, and reward 0, since the reward scored on an episode's first
  observation belongs to no period of either episode (``hierarchical`` scores 0
  there anyway).
* The next acting step is looked up past the steps being trained: in the
  rollout's bootstrap step (``rollouts``), or in the rest of the replay buffer
  and the hand-over's bootstrap step (``replay-windows``). A group step whose
  next acting step is not stored yet is not trained: under ``rollouts`` it is
  lost (rare when ``rollout_steps`` is a multiple of the group's period), under
  replay windows it trains once the next steps arrive.
* GAE runs backwards over the group's acting steps only (the time axis
  compressed to them), ``A_k = delta_k + gamma * lambda * A_{k+1}``, truncated at
  the end of the trained steps or window like the main streams (the bootstrap
  value carries the rest). Advantages are normalised per group over its trained
  steps (per minibatch of windows under ``replay-windows``), as
  ``normalize_advantages`` and ``advantage_centering`` say.

Each group adds a clipped-ratio policy term on its own columns at its trained
steps (masked means), its entropy term and its value loss (clipped with
``value_clip_range``) to the same loss; one optimizer steps the whole network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import torch

from pamiqx.api.policy import PolicyStep
from pamiqx.faults import PluginIdentity, check_policy_groups
from pamiqx.learner.advantages import normalize_advantages
from pamiqx.learner.batch import GroupSteps
from pamiqx.learner.loss import explained_variance
from pamiqx.learner.options import PPOOptions


@attrs.frozen
class GroupTargets:
    """What each group's step at ``t`` is credited with, ``(N, E, G)``.

    Attributes:
        rewards: The reward scored at the group's next acting step (0 where terminal).
        next_values: The value there (0 where terminal).
        terminal: An episode starts before or at the next acting step.
        trainable: The group acts at ``t`` and its target is known.
    """

    rewards: torch.Tensor
    next_values: torch.Tensor
    terminal: torch.Tensor
    trainable: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> GroupTargets:
        """Return the targets with ``fn`` applied to each tensor (e.g. a gather)."""
        return GroupTargets(*(fn(getattr(self, f.name)) for f in attrs.fields(GroupTargets)))


@attrs.frozen
class GroupRecord:
    """Steps of the extra groups as stored while acting, with their targets, ``(T, N, G)``.

    Attributes:
        log_probs: Acting-time log-probabilities of each group's columns.
        values: Acting-time value estimates.
        acting: bool, the group acted.
        targets: What each acting step is credited with.
    """

    log_probs: torch.Tensor
    values: torch.Tensor
    acting: torch.Tensor
    targets: GroupTargets


@attrs.frozen
class GroupTraining:
    """What PPO's gradient steps read for the extra groups, ``(T, N, G)``.

    Attributes:
        log_probs: Acting-time log-probabilities (the ratios' denominators).
        values: Acting-time values (the value clip's centre).
        advantages: Advantages (normalised as asked) at trained steps, else 0.
        returns: Value targets.
        mask: bool, the step is trained for the group.
    """

    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    mask: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> GroupTraining:
        """Return the record with ``fn`` applied to each tensor (a minibatch's gather)."""
        return GroupTraining(*(fn(getattr(self, f.name)) for f in attrs.fields(GroupTraining)))


def group_targets(
    acting: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    starts: torch.Tensor,
    after: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> GroupTargets:
    """Find each acting step's next acting step and read its reward and value there.

    Args:
        acting: ``(N, E, G)`` bool, the group acts at the step.
        rewards: ``(N, E, G)`` rewards the groups scored at each step.
        values: ``(N, E, G)`` the groups' values at each step.
        starts: ``(N, E)`` the step's observation starts an episode.
        after: The step after the last one: ``(acting, rewards, values)`` each
            ``(E, G)`` and whether it starts an episode ``(E,)``.

    Returns:
        The targets of every step (meaningful where ``trainable``).
    """
    acting = acting.bool()
    next_acting, next_rewards, next_values, next_start = after
    known = next_acting.bool()
    reward = next_rewards.to(values.dtype)
    value = next_values.to(values.dtype)
    # An episode start between a step and (inclusive) its next acting step.
    terminal = next_start.bool().unsqueeze(-1).expand_as(known)
    out_rewards = torch.zeros_like(values)
    out_values = torch.zeros_like(values)
    out_terminal = torch.zeros_like(acting)
    out_trainable = torch.zeros_like(acting)
    for t in range(acting.shape[0] - 1, -1, -1):
        trainable = acting[t] & (known | terminal)
        open_end = trainable & ~terminal
        out_rewards[t] = torch.where(open_end, reward, 0.0)
        out_values[t] = torch.where(open_end, value, 0.0)
        out_terminal[t] = terminal
        out_trainable[t] = trainable
        # Step t is now the future of step t - 1.
        act, start = acting[t], starts[t].bool().unsqueeze(-1)
        reward = torch.where(act, rewards[t].to(values.dtype), reward)
        value = torch.where(act, values[t], value)
        known = known | act
        terminal = torch.where(act, start.expand_as(act), terminal | start)
    return GroupTargets(out_rewards, out_values, out_terminal, out_trainable)


def group_gae(
    targets: GroupTargets, acting: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over each group's acting steps inside ``T`` steps (axis 0), truncated at the end.

    Args:
        targets: ``(T, N, G)`` what each acting step is credited with.
        acting: ``(T, N, G)`` bool, the group acts.
        values: ``(T, N, G)`` the groups' values at each step.
        gamma: Discount per group step.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)`` ``(T, N, G)``, 0 and the value where not trainable.
    """
    with torch.no_grad():
        v = values.detach()
        advantages = torch.zeros_like(v)
        running = torch.zeros_like(v[0])  # A of the next acting step inside the steps
        for t in range(v.shape[0] - 1, -1, -1):
            going_on = (~targets.terminal[t]).to(v.dtype)
            delta = targets.rewards[t] + gamma * going_on * targets.next_values[t] - v[t]
            adv = delta + (gamma * lam) * going_on * running
            adv = torch.where(targets.trainable[t], adv, 0.0)
            advantages[t] = adv
            running = torch.where(acting[t].bool(), adv, running)
        return advantages, advantages + v


def normalize_group_advantages(
    advantages: torch.Tensor, mask: torch.Tensor, center: bool
) -> torch.Tensor:
    """Normalise each group's advantages over its masked steps (``(..., G)``)."""
    out = advantages.clone()
    for g in range(advantages.shape[-1]):
        chosen = mask[..., g]
        if bool(chosen.any()):
            column = out[..., g]
            column[chosen] = normalize_advantages(advantages[..., g][chosen], center=center)
    return out


def record_from_rollout(
    groups: GroupSteps, episode_starts: torch.Tensor, dones: torch.Tensor
) -> GroupRecord:
    """Return a rollout's group steps with their targets (looked up to the bootstrap step)."""
    after = (groups.last_acting, groups.last_rewards, groups.last_values, dones[-1])
    targets = group_targets(groups.acting, groups.rewards, groups.values, episode_starts, after)
    return GroupRecord(groups.log_probs, groups.values, groups.acting, targets)


def group_training(
    record: GroupRecord, options: PPOOptions, chunks: Sequence[torch.Tensor] | None = None
) -> tuple[GroupTraining, dict[str, float]]:
    """Run GAE per group and normalise; return what PPO trains on and the groups' metrics.

    Args:
        record: ``(T, N, G)`` steps (a rollout, or windows side by side).
        options: ``gamma_int``, ``gae_lambda`` and how to normalise.
        chunks: Column sets normalised apart (minibatches of windows), or None: all.

    Returns:
        The training record and ``policy/group{g}/...`` metrics (``g`` from 1).
    """
    targets = record.targets
    advantages, returns = group_gae(
        targets, record.acting, record.values, options.gamma_int, options.gae_lambda
    )
    mask = targets.trainable
    metrics = _record_metrics(record, advantages, returns)
    normalised = advantages
    if options.normalize_advantages:
        normalised = advantages.clone()
        for columns in chunks if chunks is not None else [torch.arange(advantages.shape[1])]:
            normalised[:, columns] = normalize_group_advantages(
                advantages[:, columns], mask[:, columns], options.advantage_centering
            )
    return GroupTraining(record.log_probs, record.values, normalised, returns, mask), metrics


def _record_metrics(
    record: GroupRecord, advantages: torch.Tensor, returns: torch.Tensor
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    mask = record.targets.trainable
    for g in range(mask.shape[-1]):
        chosen = mask[..., g]
        prefix = f"policy/group{g + 1}"
        metrics[f"{prefix}/trained_fraction"] = float(chosen.float().mean())
        if not bool(chosen.any()):
            continue
        metrics[f"{prefix}/reward"] = float(record.targets.rewards[..., g][chosen].mean())
        metrics[f"{prefix}/advantage_mean"] = float(advantages[..., g][chosen].mean())
        ev = explained_variance(record.values[..., g][chosen], returns[..., g][chosen])
        metrics[f"{prefix}/explained_variance"] = ev
    return metrics


def group_ppo_loss(
    new_log_prob: torch.Tensor,
    new_values: torch.Tensor,
    entropy: torch.Tensor,
    steps: GroupTraining,
    config: PPOOptions,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over groups of a clipped PPO term, an entropy term and a value loss, ``(B, G)`` inputs.

    Each term is a mean over the group's trained steps in the minibatch (a group
    with none there adds 0). ``steps`` holds the minibatch's rows of
    :class:`GroupTraining` (``(B, G)``), treated as constants.

    Returns:
        ``(loss, metrics)``; per group ``policy/group{g}/policy_loss``, ``value_loss``,
        ``entropy``, ``approx_kl`` and ``clip_fraction``.
    """
    mask = steps.mask.to(new_log_prob.dtype)
    count = mask.sum(dim=0).clamp(min=1.0)

    def masked_mean(x: torch.Tensor) -> torch.Tensor:
        return (x * mask).sum(dim=0) / count

    log_ratio = (new_log_prob - steps.log_probs.detach()) * mask
    ratio = log_ratio.exp()
    advantages = steps.advantages.detach()
    clip = config.clip_range
    surrogate = torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    policy = -masked_mean(surrogate)
    target, old = steps.returns.detach(), steps.values.detach()
    value_error = (new_values - target).square()
    if config.value_clip_range is not None:
        vc = config.value_clip_range
        clipped = old + (new_values - old).clamp(-vc, vc)
        value_error = torch.max(value_error, (clipped - target).square())
    value = 0.5 * masked_mean(value_error)
    entropy_mean = masked_mean(entropy)
    per_group = policy - config.entropy_coef * entropy_mean + config.value_coef * value
    with torch.no_grad():
        kl = masked_mean((ratio - 1.0) - log_ratio)
        clipped_share = masked_mean(((ratio - 1.0).abs() > clip).to(mask.dtype))
        metrics: dict[str, float] = {}
        for g in range(mask.shape[-1]):
            prefix = f"policy/group{g + 1}"
            metrics[f"{prefix}/policy_loss"] = float(policy[g])
            metrics[f"{prefix}/value_loss"] = float(value[g])
            metrics[f"{prefix}/entropy"] = float(entropy_mean[g])
            metrics[f"{prefix}/approx_kl"] = float(kl[g])
            metrics[f"{prefix}/clip_fraction"] = float(clipped_share[g])
    return per_group.sum(), metrics


def policy_groups_loss(
    out: PolicyStep,
    internal: torch.Tensor,
    steps: GroupTraining,
    widths: tuple[int, ...],
    who: PluginIdentity,
    config: PPOOptions,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the groups' summed PPO loss for a minibatch's rows, from the network's output.

    Args:
        out: What ``forward_sequence`` returned for the minibatch (``B`` rows).
        internal: ``(B, Z)`` the internal actions taken.
        steps: The minibatch's ``(B, G)`` rows of :class:`GroupTraining`.
        widths: The groups' column widths.
        who: The policy's plugin, named if its group fields are wrong.
        config: Clip ranges and coefficients.

    Raises:
        PluginFault: ``group_values`` or ``group_acting`` missing or misshapen.
    """
    _, values, _ = check_policy_groups(
        who, "forward_sequence()", out, internal.shape[0], len(widths), rewards=False
    )
    return group_ppo_loss(
        out.group_log_probs(internal, widths).float(),
        values.float(),
        out.group_entropy(widths).float(),
        steps,
        config,
    )
