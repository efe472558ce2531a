"""The policy learner: clipped PPO with GAE over extrinsic and intrinsic reward streams.

Extrinsic rewards are episodic (discount ``gamma_ext``, cut at episode ends);
intrinsic rewards are non-episodic (``gamma_int``) and divided by a running
estimate of the spread of their discounted return, as in RND. Each stream has
its own value head; advantages are mixed with ``ext_coef`` and ``int_coef``.
A recurrent policy trains on windows of ``sequence_length`` consecutive steps,
each starting from the recurrent state stored when it was collected.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch

from pamiqx.api.policy import PolicyNetwork
from pamiqx.faults import UNNAMED_POLICY, PluginIdentity, TrainingDiverged, blame
from pamiqx.learner.advantages import IntrinsicRewardNormalizer, compute_advantages
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.loss import explained_variance, ppo_loss
from pamiqx.learner.options import PPOOptions
from pamiqx.precision import autocast_context


def make_optimizer(parameters: Any, options: PPOOptions) -> torch.optim.Optimizer:
    """Return Adam, or SGD with Nesterov momentum 0.9 (the reference experiments' choice)."""
    lr, weight_decay = options.lr, options.weight_decay
    if options.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, eps=1e-5)


class FrozenPolicyOptimizer:
    """Stands in for the optimizer of a policy without trainable parameters.

    It holds no parameter groups and no state, so nothing is optimised and a
    checkpoint keeps the optimizer's layout (an empty per-parameter state).

    Attributes:
        param_groups: Always empty.
    """

    def __init__(self) -> None:
        """Hold nothing."""
        self.param_groups: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        """Return an empty optimizer state."""
        return {"state": {}, "param_groups": []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Accept an empty optimizer state.

        Raises:
            ValueError: The state holds parameters (it was saved for a trainable policy).
        """
        if state.get("state") or state.get("param_groups"):
            raise ValueError("the saved optimizer has parameters; this policy has none")


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
        """Create the optimizer and the intrinsic-reward normaliser.

        Args:
            policy: The policy (its parameters are trained in place).
            config: PPO hyperparameters.
            device: The training device.
            precision: ``fp32`` or ``bf16`` (autocast on CUDA).
            generator: CPU generator for minibatch shuffling (seeded by the host).
            who: The plugin that built the policy, named if its network raises.
        """
        self.policy = policy
        self.config = config
        self.device = device
        self.precision = precision
        self.generator = generator or torch.Generator().manual_seed(0)
        self.who = who
        # A policy with nothing to train (the `random` baseline) gets no optimizer.
        self.trainable = any(p.requires_grad for p in policy.parameters())
        self.optimizer: torch.optim.Optimizer | FrozenPolicyOptimizer = (
            make_optimizer(policy.parameters(), config)
            if self.trainable
            else FrozenPolicyOptimizer()
        )
        self.int_normalizer = IntrinsicRewardNormalizer(gamma=config.gamma_int)
        self.updates = 0

    def train(self, batch: RolloutBatch, intrinsic: torch.Tensor) -> dict[str, float]:
        """Run the PPO epochs on one rollout.

        Args:
            batch: The rollout on the training device.
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
                metrics = self._step(batch, chosen, length, adv.advantages, adv.returns)
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
        return result

    def _step(
        self,
        batch: RolloutBatch,
        windows: torch.Tensor,
        length: int,
        advantages: torch.Tensor,
        returns: dict[str, torch.Tensor],
    ) -> dict[str, float]:
        # windows: (B, 2) of (start step, env); gather (length, B) index grids.
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
            new_log_prob = out.log_prob(take(batch.actions), taken_internal)
            loss, metrics = ppo_loss(
                new_log_prob.float(),
                take(batch.log_probs),
                take(advantages),
                {k: v.float() for k, v in out.values.items()},
                {k: take(v) for k, v in batch.values.items()},
                {k: take(v) for k, v in returns.items()},
                out.entropy().float(),
                self.config,
            )
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
        return metrics

    def _check_weights(self) -> None:
        """Stop a phase whose steps left nan or inf weights (once per phase: cheap)."""
        with torch.no_grad():
            bad = [n for n, p in self.policy.named_parameters() if not bool(p.isfinite().all())]
        if bad:
            raise TrainingDiverged(
                f"the policy's weights became nan or inf in training phase {self.updates + 1} "
                f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); no checkpoint is "
                f"written from them. Lower policy.lr (now {self.config.lr:g}) or "
                f"policy.max_grad_norm (now {self.config.max_grad_norm:g})."
            )

    def _check_finite(self, what: str, value: float, metrics: dict[str, float]) -> None:
        if math.isfinite(value):
            return
        parts = ", ".join(
            f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(("loss/", "entropy"))
        )
        raise TrainingDiverged(
            f"the PPO {what} became {value} in training phase {self.updates + 1} ({parts}); "
            f"the weights were not updated with it and no checkpoint is written from it. "
            f"Lower policy.lr (now {self.config.lr:g}) or policy.max_grad_norm "
            f"(now {self.config.max_grad_norm:g}), or check the rewards."
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer, normaliser and counters (the policy is saved by the host)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "int_normalizer": self.int_normalizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.int_normalizer.load_state_dict(state["int_normalizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])


def _windows(steps: int, envs: int, length: int) -> torch.Tensor:
    """Return ``(N, 2)`` (start, env) pairs tiling each world's steps by ``length``."""
    starts = torch.arange(0, steps - length + 1, length)
    grid_t, grid_e = torch.meshgrid(starts, torch.arange(envs), indexing="ij")
    return torch.stack([grid_t.reshape(-1), grid_e.reshape(-1)], dim=1)
