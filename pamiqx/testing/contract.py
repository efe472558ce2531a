"""Contract checks every curiosity plugin runs in its own tests (see :mod:`pamiqx.testing`).

The checks drive a mechanism exactly as the host does: observations arrive
step by step (online mechanisms score them in :meth:`Curiosity.agent_step`),
rollouts are scored with :meth:`Curiosity.rewards` and trained on with
:meth:`Curiosity.update`. A mechanism that owns the policy network
(:meth:`Curiosity.policy_network`) is trained as the host's PPO step trains it,
on the network's own loss (:attr:`PolicyStep.aux_loss`), without the PPO terms;
a network that declares policy groups is checked for the per-group outputs the
host's PPO trains them on.
The data is a small synthetic world: a cycle of a few smooth coloured frames,
each action leading to the next, so a mechanism can learn it; a *novel* frame is
a high-frequency pattern never shown.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import attrs
import torch

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    Curiosity,
    CuriosityPlugin,
    ObservationSpec,
    Transitions,
)

RewardFn = Callable[[Curiosity, Transitions], torch.Tensor]
SMALL_IMAGES = ObservationSpec((16, 16, 3), "uint8", "image")
FOUR_ACTIONS = ActionSpec("discrete", (4,))


@attrs.frozen
class ContractSetup:
    """How to build and feed the mechanism under test.

    Attributes:
        plugin: The curiosity plugin class.
        options: Its options (None: the defaults).
        observation_spec: Observations to feed (small images by default, for speed).
        action_spec: Actions to feed.
        device: Device to build on.
        steps: Steps per rollout in the checks.
        envs: Parallel worlds per rollout.
        frames: Frames in the familiar cycle.
        owned_lr: Adam learning rate for a network that owns its curiosity.
    """

    plugin: type[CuriosityPlugin]
    options: Any = None
    observation_spec: ObservationSpec = SMALL_IMAGES
    action_spec: ActionSpec = FOUR_ACTIONS
    device: str = "cpu"
    steps: int = 32
    envs: int = 2
    frames: int = 4
    owned_lr: float = 1e-3

    def build(self, seed: int = 0) -> Curiosity:
        """Build a fresh mechanism with seeded torch generators."""
        torch.manual_seed(seed)
        options = self.options if self.options is not None else self.plugin.Options()
        context = BuildContext("contract", seed, self.device)
        return self.plugin().build(options, context, self.observation_spec, self.action_spec)


def _frames(spec: ObservationSpec, count: int) -> torch.Tensor:
    """Familiar frames: smooth colour gradients, one hue per frame."""
    shape = spec.shape
    if spec.kind == "vector":
        base = torch.zeros(count, *shape)
        for i in range(count):
            base[i, i % shape[0]] = 1.0
        return base
    if spec.kind == "tokens":
        # Smooth token latents: each frame a phase-shifted cosine over tokens and features.
        tokens, width = shape
        grid = (
            torch.arange(tokens).view(tokens, 1) / tokens
            + torch.arange(width).view(1, width) / width
        )
        return torch.stack([torch.cos(2 * torch.pi * (grid + i / count)) for i in range(count)])
    h, w, c = shape
    ys = torch.linspace(0, 1, h).view(h, 1, 1)
    xs = torch.linspace(0, 1, w).view(1, w, 1)
    frames = []
    for i in range(count):
        hue = torch.tensor([(i * 0.37 + k * 0.21) % 1.0 for k in range(c)]).view(1, 1, c)
        frames.append((0.2 + 0.6 * hue) * (0.5 + 0.5 * (ys + xs) / 2))
    return (torch.stack(frames) * 255).to(torch.uint8)


def _novel_frame(spec: ObservationSpec) -> torch.Tensor:
    """A frame unlike the familiar ones: a saturated high-frequency checkerboard."""
    if spec.kind in ("vector", "tokens"):
        return torch.full(spec.shape, -3.0)
    h, w, c = spec.shape
    grid = ((torch.arange(h).view(h, 1) // 2 + torch.arange(w).view(1, w) // 2) % 2).float()
    colours = torch.stack([grid, 1 - grid, grid * 0.5][:c] + [grid] * max(0, c - 3), dim=-1)
    return (colours * 255).to(torch.uint8)


def _actions_for(spec: ActionSpec, index: torch.Tensor) -> torch.Tensor:
    if spec.kind == "discrete":
        return index % spec.nvec[0]
    return torch.stack([index % n for n in spec.nvec], dim=-1)


class ContractWorld:
    """Feeds a mechanism like the host: step by step for online ones, then rollouts."""

    def __init__(self, setup: ContractSetup, curiosity: Curiosity) -> None:
        """Prepare the familiar frames and the novel one on the setup's device."""
        self.setup = setup
        self.curiosity = curiosity
        self.device = torch.device(setup.device)
        self.frames = _frames(setup.observation_spec, setup.frames).to(self.device)
        self.novel = _novel_frame(setup.observation_spec).to(self.device)
        self.phase = torch.arange(setup.envs, device=self.device)
        self.prev_action: torch.Tensor | None = None
        self.first = True
        self.network = curiosity.policy_network({})
        self.optimizer = (
            None
            if self.network is None
            else torch.optim.Adam(self.network.parameters(), lr=setup.owned_lr)
        )

    def train(self, batch: Transitions) -> dict[str, float]:
        """Train the mechanism on a batch: ``update()``, or its network's own loss."""
        if self.network is None or self.optimizer is None:
            return self.curiosity.update(batch)
        envs = batch.shape[1]
        out = self.network.forward_sequence(
            batch.observations,
            self.network.initial_state(envs, self.device),
            None,
            batch.actions,
            None,
        )
        assert out.aux_loss is not None, "a network that owns its curiosity must return aux_loss"
        self.optimizer.zero_grad(set_to_none=True)
        out.aux_loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return {"loss": float(out.aux_loss.detach())}

    def rollout(self, novel_at: int | None = None) -> Transitions:
        """Collect ``steps`` transitions of the familiar cycle.

        Args:
            novel_at: If given, the observation arriving after step ``novel_at``
                is the novel frame (so transition ``novel_at`` is the novel one).

        Returns:
            The transitions, with online rewards when the mechanism is online.
        """
        steps, envs = self.setup.steps, self.setup.envs
        index = self.phase.unsqueeze(0) + torch.arange(steps + 1, device=self.device).unsqueeze(1)
        index = index % self.setup.frames  # (T + 1, E)
        observations = self.frames[index]
        if novel_at is not None:
            observations[novel_at + 1] = self.novel
        actions = _actions_for(self.setup.action_spec, index[:-1] + 1)
        online = self.curiosity.style == "online"
        intrinsic = torch.zeros(steps, envs, device=self.device)
        for t in range(steps + 1):
            # A rollout's first observation was the previous rollout's last, already scored.
            if online and (t > 0 or self.first):
                starts = torch.full((envs,), t == 0, dtype=torch.bool, device=self.device)
                with torch.no_grad():
                    reward = self.curiosity.agent_step(observations[t], self.prev_action, starts)
                if reward is not None and t > 0:
                    intrinsic[t - 1] = reward.to(self.device).float()
            if t < steps:
                self.prev_action = actions[t]
        self.first = False
        self.phase = (self.phase + steps) % self.setup.frames
        return Transitions(
            observations=observations[:-1],
            next_observations=observations[1:],
            actions=actions,
            dones=torch.zeros(steps, envs, dtype=torch.bool, device=self.device),
            intrinsic=intrinsic if online else None,
        )


def check_reward_shape(setup: ContractSetup) -> None:
    """Rewards are finite float tensors of shape ``(T, E)`` on the batch's device, without grad."""
    curiosity = setup.build()
    batch = ContractWorld(setup, curiosity).rollout()
    rewards = curiosity.rewards(batch)
    assert isinstance(rewards, torch.Tensor), f"rewards() returned {type(rewards).__name__}"
    assert tuple(rewards.shape) == batch.shape, (
        f"rewards shape {tuple(rewards.shape)} != {batch.shape}"
    )
    assert rewards.is_floating_point(), f"rewards dtype {rewards.dtype} is not floating point"
    assert bool(torch.isfinite(rewards).all()), "rewards contain nan or inf"
    assert rewards.device == batch.dones.device, (
        f"rewards on {rewards.device}, batch on {batch.dones.device}"
    )
    assert not rewards.requires_grad and rewards.grad_fn is None, (
        "rewards carry gradients: the policy's loss would train the curiosity"
    )


def check_no_gradient_leak(setup: ContractSetup) -> None:
    """Scoring and training leave the batch untouched and give the policy no gradient path."""
    curiosity = setup.build()
    world = ContractWorld(setup, curiosity)
    batch = world.rollout()
    observations = batch.observations.clone()
    policy_input = batch.observations.float().requires_grad_(True)
    probe = Transitions(
        policy_input, batch.next_observations, batch.actions, batch.dones, batch.intrinsic
    )
    rewards = curiosity.rewards(probe)
    assert not rewards.requires_grad, "rewards depend differentiably on the policy's inputs"
    world.train(batch)
    assert torch.equal(batch.observations, observations), "update() modified the batch in place"


def _loss(metrics: dict[str, float]) -> float:
    keys = [k for k in metrics if k == "loss" or k.endswith("/loss") or k.startswith("loss")]
    assert keys, f"update() must report its training loss as 'loss' (got {sorted(metrics)})"
    return float(metrics["loss"] if "loss" in metrics else metrics[keys[0]])


def check_update_lowers_loss(setup: ContractSetup, updates: int = 30) -> None:
    """Repeated updates on one batch lower the mechanism's own reported loss."""
    curiosity = setup.build()
    world = ContractWorld(setup, curiosity)
    batch = world.rollout()
    first = _loss(world.train(batch))
    last = first
    for _ in range(updates):
        last = _loss(world.train(batch))
    assert last < first, f"loss did not decrease over {updates} updates: {first:.5g} -> {last:.5g}"


def _round_trip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def check_state_round_trip(setup: ContractSetup, updates: int = 3) -> None:
    """A state saved, loaded with ``weights_only=True`` and restored gives identical rewards."""
    trained = setup.build(seed=0)
    world = ContractWorld(setup, trained)
    for _ in range(updates):
        world.train(world.rollout())
    state = _round_trip(trained.state_dict())
    restored = setup.build(seed=1)
    restored.load_state_dict(state)
    # Both see the same fresh sequence; identical states must score it identically.
    at = setup.steps // 2
    expected = trained.rewards(ContractWorld(setup, trained).rollout(novel_at=at))
    got = restored.rewards(ContractWorld(setup, restored).rollout(novel_at=at))
    assert torch.allclose(expected, got, atol=1e-6), (
        f"restored state gives different rewards (max difference "
        f"{float((expected - got).abs().max()):.3g})"
    )


def check_device(setup: ContractSetup) -> None:
    """Every module lives on the device given in the build context."""
    curiosity = setup.build()
    device = torch.device(setup.device)
    modules = dict(curiosity.modules())
    network = curiosity.policy_network({})
    if network is not None:
        modules["policy_network"] = network
    for name, module in modules.items():
        for param in list(module.parameters()) + list(module.buffers()):
            assert param.device.type == device.type, (
                f"module '{name}' has a tensor on {param.device}"
            )
    check_reward_shape(setup)


def check_novelty(
    setup: ContractSetup, updates: int = 60, reward_fn: RewardFn | None = None
) -> tuple[float, float]:
    """After training on familiar data, a novel observation earns more than a familiar one.

    Args:
        setup: The mechanism under test.
        updates: Rollouts to train on before measuring.
        reward_fn: What to compare (default: the mechanism's rewards); sign-mixing
            mechanisms pass their maximising component here.

    Returns:
        ``(familiar, novel)`` mean rewards, for the caller to report.
    """
    curiosity = setup.build()
    world = ContractWorld(setup, curiosity)
    for _ in range(updates):
        world.train(world.rollout())
    at = setup.steps // 2
    probe = world.rollout(novel_at=at)
    score = reward_fn or (lambda c, b: c.rewards(b))
    rewards = score(curiosity, probe).detach().float().cpu()
    novel = float(rewards[at].mean())
    # Familiar: transitions before the novel frame, once the mechanism has settled.
    familiar = float(rewards[2:at].mean())
    assert novel > familiar, (
        f"a novel observation is not more rewarding than familiar ones: "
        f"novel {novel:.5g} <= familiar {familiar:.5g}"
    )
    return familiar, novel


def check_policy_group_outputs(setup: ContractSetup) -> None:
    """An owned network that declares policy groups returns what the host trains them on.

    Only for a network with :attr:`pamiqx.api.PolicyNetwork.internal_groups`
    (others pass): the widths cover the internal action; acting step by step
    returns ``(B, G)`` finite group rewards and values and a bool acting mask, some
    group acts, a group's log-probability is 0 where it holds, and
    ``forward_sequence`` returns the same values and acting masks for ``T * B`` rows.
    """
    curiosity = setup.build()
    network = curiosity.policy_network({})
    if network is None or not network.internal_groups:
        return
    widths = tuple(network.internal_groups)
    assert sum(widths) == network.internal_action_dim, (
        f"internal_groups {widths} do not cover internal_action_dim {network.internal_action_dim}"
    )
    batch = ContractWorld(setup, curiosity).rollout()
    steps, envs = batch.shape
    shape = (envs, len(widths))
    device = torch.device(setup.device)
    hidden = network.initial_state(envs, device)
    values, acting, internals = [], [], []
    with torch.no_grad():
        for t in range(steps):
            out = network(batch.observations[t], hidden)
            for name in ("group_rewards", "group_values", "group_acting"):
                field = getattr(out, name)
                assert isinstance(field, torch.Tensor) and tuple(field.shape) == shape, (
                    f"PolicyStep.{name} must be a {shape} tensor, got {field!r:.80}"
                )
            assert out.group_rewards is not None and out.group_values is not None
            assert out.group_acting is not None and out.internal is not None
            assert bool(torch.isfinite(out.group_rewards).all()), "group_rewards hold nan or inf"
            assert bool(torch.isfinite(out.group_values).all()), "group_values hold nan or inf"
            internal = out.internal.sample()
            held = ~out.group_acting.bool()
            log_probs = out.group_log_probs(internal, widths)
            assert bool((log_probs[held] == 0).all()), "a holding group's log-probability counts"
            values.append(out.group_values)
            acting.append(out.group_acting.bool())
            internals.append(internal)
            hidden = network.fold_action(out.hidden, batch.actions[t], internal)
        assert bool(torch.stack(acting).any(dim=(0, 1)).all()), "some group never acts"
        seq = network.forward_sequence(
            batch.observations,
            network.initial_state(envs, device),
            None,
            batch.actions,
            torch.stack(internals),
        )
    assert seq.group_values is not None and seq.group_acting is not None, (
        "forward_sequence must return group_values and group_acting"
    )
    assert torch.equal(seq.group_acting.bool(), torch.cat(acting)), (
        "forward_sequence's group_acting differs from acting step by step"
    )
    assert torch.allclose(seq.group_values, torch.cat(values), atol=1e-4), (
        "forward_sequence's group_values differ from acting step by step"
    )


def check_curiosity_contract(setup: ContractSetup, reward_fn: RewardFn | None = None) -> None:
    """Run every contract check (see the module docstring)."""
    check_reward_shape(setup)
    check_no_gradient_leak(setup)
    check_update_lowers_loss(setup)
    check_state_round_trip(setup)
    check_device(setup)
    check_novelty(setup, reward_fn=reward_fn)
    check_policy_group_outputs(setup)
