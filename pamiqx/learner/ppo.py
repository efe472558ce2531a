"""The policy learner: clipped PPO with GAE over extrinsic and intrinsic reward streams.

Extrinsic rewards are episodic (discount ``gamma_ext``, cut at episode ends);
intrinsic rewards are non-episodic (``gamma_int``) and divided by a running
estimate of the spread of their discounted return, as in RND. Each stream has
its own value head; advantages are mixed with ``ext_coef`` and ``int_coef``.
A recurrent policy trains on windows of ``sequence_length`` consecutive steps,
each starting from the recurrent state stored when it was collected.

Two regimes (``policy.regime``): ``rollouts`` trains ``epochs`` passes over each
handed-over rollout; ``replay-windows`` (the reference's) adds each handed-over
block of steps to a :class:`~pamiqx.learner.replay.ReplayBuffer` and trains one
pass over random windows drawn from it.

A network with extra policy groups (:attr:`pamiqx.api.PolicyNetwork.internal_groups`)
gets, in the same loss, one more PPO per group on the group's own reward, over
its own acting steps (:mod:`pamiqx.learner.groups`). The gradient-norm clip
(``max_grad_norm``) applies once, to the summed gradient of all groups: where the
groups' parameters are disjoint (``hierarchical``'s layers) this differs from
the reference's separate optimizers only through that clip, which the
reference does not have.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from pamiqx.api.policy import PolicyNetwork
from pamiqx.faults import (
    UNNAMED_POLICY,
    PluginIdentity,
    blame,
    check_internal_groups,
)
from pamiqx.learner.advantages import (
    IntrinsicRewardNormalizer,
    compute_advantages,
    normalize_advantages,
    scale_intrinsic,
    stream_advantages,
)
from pamiqx.learner.batch import RolloutBatch, Sequences
from pamiqx.learner.divergence import check_finite, check_weights
from pamiqx.learner.groups import (
    GroupTraining,
    group_training,
    policy_groups_loss,
    record_from_rollout,
)
from pamiqx.learner.loss import explained_variance, ppo_loss
from pamiqx.learner.optimizers import FrozenPolicyOptimizer, make_optimizer
from pamiqx.learner.options import PPOOptions
from pamiqx.learner.replay import ReplayBuffer, replay_steps
from pamiqx.learner.sub_actions import (
    acting_sub_log_probs,
    sub_action_entropy,
    sub_action_log_probs,
)
from pamiqx.precision import autocast_context


class PPOLearner:
    """Trains a :class:`PolicyNetwork` on rollouts (PPO loss plus the network's own aux loss)."""

    def __init__(
        self,
        policy: PolicyNetwork,
        config: PPOOptions,
        device: torch.device,
        precision: str = "fp32",
        generator: torch.Generator | None = None,
        who: PluginIdentity = UNNAMED_POLICY,
    ) -> None:
        """Create the optimizer, the intrinsic-reward normaliser and, if used, the replay buffer.

        Args:
            policy: The policy (its parameters are trained in place).
            config: PPO hyperparameters.
            device: The training device.
            precision: ``fp32`` or ``bf16`` (autocast on CUDA).
            generator: CPU generator for minibatch shuffling and window sampling
                (seeded by the host).
            who: The plugin that built the policy, named if its network raises.
        """
        self.policy = policy
        self.config = config
        self.device = device
        self.precision = precision
        self.generator = generator or torch.Generator().manual_seed(0)
        self.who = who
        # Widths of the internal action's columns trained as groups 1, 2, ... (none: ()).
        self.groups = check_internal_groups(who, policy)
        # A policy with nothing to train (the `random` baseline) gets no optimizer.
        self.trainable = any(p.requires_grad for p in policy.parameters())
        self.optimizer: torch.optim.Optimizer | FrozenPolicyOptimizer = (
            make_optimizer(policy.parameters(), config)
            if self.trainable
            else FrozenPolicyOptimizer()
        )
        self.int_normalizer = IntrinsicRewardNormalizer(gamma=config.gamma_int)
        self.replay: ReplayBuffer | None = (
            ReplayBuffer(config.replay_size) if config.regime == "replay-windows" else None
        )
        self.updates = 0
        # Optimizer steps taken, and what to call after each (real-time runs sync the
        # acting copy of the policy from it, bounding how far acting lags training).
        self.gradient_steps = 0
        self.after_step: Callable[[], None] | None = None

    def train(self, batch: RolloutBatch, intrinsic: torch.Tensor) -> dict[str, float]:
        """Train on the steps the collector handed over, as ``policy.regime`` says.

        Args:
            batch: The new steps on the training device (a full rollout).
            intrinsic: Raw intrinsic rewards ``(T, E)`` from the curiosity.

        Returns:
            Metrics of this training phase (means over minibatches); for a policy
            without trainable parameters, which is not trained, only the raw rewards.
        """
        if not self.trainable:
            return {
                "reward/intrinsic": float(intrinsic.mean()),
                "reward/extrinsic": float(batch.rewards_ext.mean()),
            }
        if self.replay is not None:
            return self._train_replay(self.replay, batch, intrinsic)
        return self._train_rollout(batch, intrinsic)

    def _per_action(self, actions: torch.Tensor, internal: torch.Tensor) -> bool:
        """Whether per-action ratios differ from the joint one for this action layout."""
        if self.config.multi_discrete_ratio != "per-action":
            return False
        grouped = bool(self.groups)  # then the internal action is the groups', not group 0's
        columns = (actions.shape[-1] if actions.dim() == 3 else 1) + (
            internal.shape[-1] > 0 and not grouped
        )
        return columns > 1

    def _train_rollout(self, batch: RolloutBatch, intrinsic: torch.Tensor) -> dict[str, float]:
        """Run the PPO epochs on one rollout (``policy.regime = "rollouts"``)."""
        cfg = self.config
        adv = compute_advantages(
            batch.rewards_ext,
            intrinsic,
            batch.values,
            batch.last_values,
            batch.dones,
            self.int_normalizer,
            cfg,
        )
        ret_ext, ret_int = adv.returns["ext"], adv.returns["int"]
        sub = (
            self._acting_sub_log_probs(batch)
            if self._per_action(batch.actions, batch.internal)
            else None
        )
        sequences = batch.sequences(sub)
        groups: GroupTraining | None = None
        group_metrics: dict[str, float] = {}
        if batch.groups is not None:
            record = record_from_rollout(batch.groups, batch.episode_starts, batch.dones)
            groups, group_metrics = group_training(record, cfg)

        steps, envs = batch.rewards_ext.shape
        length = min(cfg.sequence_length, steps) if self.policy.is_recurrent else 1
        windows = _windows(steps, envs, length)
        per_minibatch = max(1, cfg.minibatch_size // length)
        sums: dict[str, float] = defaultdict(float)
        count = 0
        self.policy.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(len(windows), generator=self.generator)
            for start in range(0, len(windows), per_minibatch):
                chosen = windows[order[start : start + per_minibatch]]
                metrics = self._step(sequences, chosen, length, adv.advantages, adv.returns, groups)
                for k, v in metrics.items():
                    sums[k] += v
                count += 1
        self._check_weights()
        self.updates += 1
        result = {k: v / count for k, v in sums.items()}
        result.update(
            {
                "reward/intrinsic": float(intrinsic.mean()),
                "reward/intrinsic_normalized": float(adv.intrinsic_normalized.mean()),
                "reward/extrinsic": float(batch.rewards_ext.mean()),
                "value/explained_variance_ext": explained_variance(batch.values["ext"], ret_ext),
                "value/explained_variance_int": explained_variance(batch.values["int"], ret_int),
                "ppo/updates": float(self.updates),
            }
        )
        result.update(group_metrics)
        return result

    def _train_replay(
        self, replay: ReplayBuffer, batch: RolloutBatch, intrinsic: torch.Tensor
    ) -> dict[str, float]:
        """Store the new steps, then one pass over random windows (``replay-windows``).

        Intrinsic rewards are scaled as they arrive (``intrinsic_normalisation``)
        and stored scaled; each window's advantages come from its stored values,
        bootstrapped from the value of the step after it (see :mod:`.replay`), and
        are normalised per minibatch of windows (as the reference).
        """
        cfg = self.config
        rewards_int = scale_intrinsic(intrinsic, self.int_normalizer, cfg)
        steps, next_groups = replay_steps(batch, rewards_int)
        if self._per_action(batch.actions, batch.internal):
            steps["sub_log_probs"] = self._acting_sub_log_probs(batch)
        replay.add(steps, batch.last_values, next_groups)
        result = {
            "reward/intrinsic": float(intrinsic.mean()),
            "reward/intrinsic_normalized": float(rewards_int.mean()),
            "reward/extrinsic": float(batch.rewards_ext.mean()),
            "replay/size": float(replay.size),
        }
        length = cfg.window_length
        if replay.size < length:  # not one window yet: only the rewards are recorded
            result["ppo/updates"] = float(self.updates)
            return result
        starts = torch.randint(
            0, replay.size - length + 1, (cfg.windows,), generator=self.generator
        )
        envs = torch.randint(0, replay.num_envs, (cfg.windows,), generator=self.generator)
        drawn = replay.windows(starts, envs, length)
        seq = drawn.sequences
        mixed, returns = stream_advantages(
            drawn.rewards_ext, drawn.rewards_int, seq.values, drawn.bootstrap, drawn.dones, cfg
        )
        per_minibatch = max(1, cfg.minibatch_size // length)
        columns = torch.arange(cfg.windows)
        chunks = [columns[i : i + per_minibatch] for i in range(0, cfg.windows, per_minibatch)]
        advantages = mixed.clone()
        if cfg.normalize_advantages:
            for chunk in chunks:
                advantages[:, chunk] = normalize_advantages(
                    mixed[:, chunk], center=cfg.advantage_centering
                )
        groups = None
        if drawn.groups is not None:
            groups, group_metrics = group_training(drawn.groups, cfg, chunks)
            result.update(group_metrics)
        sums: dict[str, float] = defaultdict(float)
        self.policy.train()
        for chunk in chunks:
            chosen = torch.stack([torch.zeros_like(chunk), chunk], dim=1)
            metrics = self._step(seq, chosen, length, advantages, returns, groups)
            for k, v in metrics.items():
                sums[k] += v
        self._check_weights()
        self.updates += 1
        result.update({k: v / len(chunks) for k, v in sums.items()})
        result.update(
            {
                "value/explained_variance_ext": explained_variance(
                    seq.values["ext"], returns["ext"]
                ),
                "value/explained_variance_int": explained_variance(
                    seq.values["int"], returns["int"]
                ),
                "ppo/updates": float(self.updates),
            }
        )
        return result

    def _acting_sub_log_probs(self, batch: RolloutBatch) -> torch.Tensor:
        """Return ``(T, E, K)`` per-sub-action log-probabilities of the new steps' actions."""
        with autocast_context(self.device, self.precision), blame(self.who, "forward_sequence()"):
            return acting_sub_log_probs(self.policy, batch, grouped=bool(self.groups))

    def _step(
        self,
        batch: Sequences,
        windows: torch.Tensor,
        length: int,
        advantages: torch.Tensor,
        returns: dict[str, torch.Tensor],
        groups: GroupTraining | None = None,
    ) -> dict[str, float]:
        # windows: (B, 2) of (start step, column); gather (length, B) index grids.
        t_index = windows[:, 0].unsqueeze(0) + torch.arange(length).unsqueeze(1)
        e_index = windows[:, 1].unsqueeze(0).expand(length, -1)
        t_index, e_index = t_index.to(self.device), e_index.to(self.device)

        def take(x: torch.Tensor) -> torch.Tensor:
            return x[t_index, e_index].flatten(0, 1)

        observations = batch.observations[t_index, e_index]
        hidden0 = batch.hidden[t_index[0], e_index[0]]
        resets = batch.episode_starts[t_index, e_index].float()
        with autocast_context(self.device, self.precision), blame(self.who, "forward_sequence()"):
            has_internal = batch.internal.shape[-1] > 0
            out = self.policy.forward_sequence(
                observations,
                hidden0,
                resets,
                batch.actions[t_index, e_index],
                batch.internal[t_index, e_index] if has_internal else None,
            )
            taken_internal = take(batch.internal) if has_internal else None
            # With groups the internal columns are theirs: group 0 is the world's action.
            own_internal = None if self.groups else taken_internal
            if batch.sub_log_probs is not None:
                new_log_prob = sub_action_log_probs(out, take(batch.actions), own_internal)
                old_log_prob = take(batch.sub_log_probs)
                entropy = sub_action_entropy(out, internal=not self.groups)
            else:
                new_log_prob = out.log_prob(take(batch.actions), own_internal)
                old_log_prob = take(batch.log_probs)
                entropy = out.entropy(internal=not self.groups)
            loss, metrics = ppo_loss(
                new_log_prob.float(),
                old_log_prob,
                take(advantages),
                {k: v.float() for k, v in out.values.items()},
                {k: take(v) for k, v in batch.values.items()},
                {k: take(v) for k, v in returns.items()},
                entropy.float(),
                self.config,
            )
            if groups is not None and taken_internal is not None:
                group_loss, group_metrics = policy_groups_loss(
                    out, taken_internal, groups.map(take), self.groups, self.who, self.config
                )
                loss = loss + group_loss
                metrics.update(group_metrics)
                metrics["loss/groups"] = float(group_loss.detach())
                self._check_finite("policy groups' loss", metrics["loss/groups"], metrics)
            if out.aux_loss is not None:
                loss = loss + out.aux_loss.float()
                metrics["loss/aux"] = float(out.aux_loss.detach())
                if not math.isfinite(metrics["loss/aux"]):
                    raise self.who.fault("forward_sequence()", "returned a nan or inf aux_loss")
            metrics.update(out.metrics)
        self._check_finite("loss", metrics["loss/total"], metrics)
        optimizer = self.optimizer
        assert isinstance(optimizer, torch.optim.Optimizer)  # train() skips a frozen policy
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.policy.parameters(), self.config.max_grad_norm
        )
        metrics["grad_norm"] = float(grad_norm)
        # Checked before the step: a nan gradient would turn every weight into nan.
        self._check_finite("gradient norm", metrics["grad_norm"], metrics)
        optimizer.step()
        self.gradient_steps += 1
        if self.after_step is not None:
            self.after_step()
        return metrics

    def _check_weights(self) -> None:
        check_weights(self.policy, self.updates + 1, self.config)

    def _check_finite(self, what: str, value: float, metrics: dict[str, float]) -> None:
        check_finite(what, value, metrics, self.updates + 1, self.config)

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer, normaliser, counters and replay buffer (the policy is the host's).

        The replay buffer (``replay``) is there only under ``replay-windows``, so a
        ``rollouts`` checkpoint keeps its layout.
        """
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "int_normalizer": self.int_normalizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }
        if self.replay is not None:
            state["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: Under ``replay-windows``, the state holds no replay buffer
                (it was saved under the ``rollouts`` regime).
        """
        if self.replay is not None and "replay" not in state:
            raise ValueError(
                "the saved learner has no replay buffer (it trained under policy.regime = "
                "'rollouts'); this experiment uses 'replay-windows'"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.int_normalizer.load_state_dict(state["int_normalizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        if self.replay is not None:
            self.replay.load_state_dict(state["replay"], self.device)


def _windows(steps: int, envs: int, length: int) -> torch.Tensor:
    """Return ``(N, 2)`` (start, env) pairs tiling each world's steps by ``length``."""
    starts = torch.arange(0, steps - length + 1, length)
    grid_t, grid_e = torch.meshgrid(starts, torch.arange(envs), indexing="ij")
    return torch.stack([grid_t.reshape(-1), grid_e.reshape(-1)], dim=1)
