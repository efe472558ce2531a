"""Torch building blocks for curiosity-driven actor-critic agents.

Everything here is a plain :class:`torch.nn.Module` with no plugin machinery: image and
vector encoders, a GRU recurrent core, discrete / multi-discrete action heads, separate
extrinsic / intrinsic value heads, :class:`PolicyNetwork` (what the PPO learner drives)
and :class:`ActorCritic`, which composes the others into one.
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical

from pamiqx.api import PolicyStep

__all__ = [
    "ActionDistribution",
    "ActorCritic",
    "ConvEncoder",
    "DiscreteHead",
    "MLPEncoder",
    "MultiDiscreteHead",
    "PolicyNetwork",
    "RecurrentCore",
    "ValueHeads",
]

# (kernel, stride) of the Nature-CNN stack, and a gentler stack for small frames where the
# Nature strides would shrink the feature map to nothing (e.g. 32x32).
_NATURE_SPEC: tuple[tuple[int, int], ...] = ((8, 4), (4, 2), (3, 1))
_SMALL_SPEC: tuple[tuple[int, int], ...] = ((4, 2), (3, 2), (3, 1))

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def _init_linear_or_conv(module: nn.Module, gain: float) -> None:
    """Orthogonally initialise the weight of a linear/conv layer and zero its bias.

    Args:
        module: Module to initialise; anything but ``nn.Linear``/``nn.Conv2d`` is ignored.
        gain: Orthogonal-init gain.
    """
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.orthogonal_(module.weight, gain=gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Return the output length of a convolution along one spatial axis."""
    return (size + 2 * padding - kernel) // stride + 1


def _layer_specs(n_layers: int, spec: tuple[tuple[int, int], ...]) -> list[tuple[int, int, int]]:
    """Expand a (kernel, stride) spec to ``n_layers`` (kernel, stride, padding) triples.

    Layers beyond the spec are size-preserving 3x3 convolutions so that longer ``channels``
    tuples only add depth, never shrink the map further.
    """
    layers = [(k, s, 0) for k, s in spec[:n_layers]]
    layers += [(3, 1, 1)] * (n_layers - len(layers))
    return layers


def _final_size(size: int, layers: list[tuple[int, int, int]]) -> int:
    """Return the spatial length after applying ``layers`` to an axis of length ``size``."""
    for kernel, stride, padding in layers:
        size = _conv_out(size, kernel, stride, padding)
    return size


class ConvEncoder(nn.Module):
    """Nature-CNN-style encoder for channel-last RGB frames.

    The conv stack is 8x8/4, 4x4/2, 3x3/1 (ReLU after each), followed by a linear layer to
    ``feature_dim`` and a ReLU. Frames too small for those strides (under ~36 px) use a
    4x4/2, 3x3/2, 3x3/1 stack instead. The flattened size is measured with a dummy forward.

    Attributes:
        feature_dim: Size of the output feature vector.
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        feature_dim: int = 256,
        channels: tuple[int, ...] = (32, 64, 64),
    ) -> None:
        """Build the encoder.

        Args:
            obs_shape: Observation shape as ``(H, W, C)``.
            feature_dim: Size of the output feature vector.
            channels: Output channels of each conv layer; layers past the third are
                size-preserving 3x3 convolutions.

        Raises:
            ValueError: If the shape, ``feature_dim`` or ``channels`` are invalid, or the
                frame is too small for any conv stack.
        """
        super().__init__()
        if len(obs_shape) != 3 or min(obs_shape) < 1:
            raise ValueError(f"obs_shape must be (H, W, C) with positive sizes, got {obs_shape}")
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positives, got {channels}")
        height, width, in_channels = obs_shape
        self.obs_shape = obs_shape
        self.feature_dim = feature_dim

        layers = _layer_specs(len(channels), _NATURE_SPEC)
        if _final_size(min(height, width), layers) < 1:
            layers = _layer_specs(len(channels), _SMALL_SPEC)
            if _final_size(min(height, width), layers) < 1:
                raise ValueError(f"frame {height}x{width} is too small for ConvEncoder")

        convs: list[nn.Module] = []
        prev = in_channels
        for out_ch, (kernel, stride, padding) in zip(channels, layers, strict=True):
            convs += [nn.Conv2d(prev, out_ch, kernel, stride, padding), nn.ReLU()]
            prev = out_ch
        convs.append(nn.Flatten())
        self.convs = nn.Sequential(*convs)

        with torch.no_grad():
            flat_dim = int(self.convs(torch.zeros(1, in_channels, height, width)).shape[1])
        self.fc = nn.Sequential(nn.Linear(flat_dim, feature_dim), nn.ReLU())
        self.apply(lambda m: _init_linear_or_conv(m, math.sqrt(2.0)))

    def forward(self, obs: Tensor) -> Tensor:
        """Encode a batch of frames.

        Args:
            obs: ``(B, H, W, C)`` frames; uint8 is scaled to [0, 1], float is assumed
                already scaled.

        Returns:
            ``(B, feature_dim)`` features.
        """
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        x = x.permute(0, 3, 1, 2)
        features: Tensor = self.fc(self.convs(x))
        return features


class MLPEncoder(nn.Module):
    """Multi-layer perceptron encoder for vector observations.

    Attributes:
        feature_dim: Size of the output feature vector.
    """

    def __init__(
        self,
        obs_dim: int,
        feature_dim: int = 64,
        hidden: tuple[int, ...] = (64,),
        activation: str = "tanh",
    ) -> None:
        """Build the encoder.

        Args:
            obs_dim: Length of the observation vector.
            feature_dim: Size of the output feature vector.
            hidden: Widths of the hidden layers before the output layer.
            activation: One of ``"tanh"``, ``"relu"`` or ``"elu"``, applied after every
                layer including the output one.

        Raises:
            ValueError: If ``activation`` is unknown or a size is not positive.
        """
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}"
            )
        if obs_dim < 1 or feature_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError("obs_dim, feature_dim and hidden widths must be positive")
        self.obs_dim = obs_dim
        self.feature_dim = feature_dim
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        prev = obs_dim
        for width in (*hidden, feature_dim):
            layers += [nn.Linear(prev, width), act()]
            prev = width
        self.net = nn.Sequential(*layers)
        self.apply(lambda m: _init_linear_or_conv(m, math.sqrt(2.0)))

    def forward(self, obs: Tensor) -> Tensor:
        """Encode a batch of vectors.

        Args:
            obs: ``(B, obs_dim)`` observations.

        Returns:
            ``(B, feature_dim)`` features.
        """
        features: Tensor = self.net(obs.float())
        return features


class RecurrentCore(nn.Module):
    """GRU recurrent core whose state can be reset at episode starts.

    Attributes:
        input_dim: Size of the input features.
        hidden_dim: Size of the hidden state (and of the output).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        """Build the core.

        Args:
            input_dim: Size of the input features.
            hidden_dim: Size of the hidden state.
        """
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.cell = nn.GRUCell(input_dim, hidden_dim)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """Return a zero hidden state.

        Args:
            batch: Batch size.
            device: Device of the state.

        Returns:
            ``(batch, hidden_dim)`` zeros.
        """
        return torch.zeros(batch, self.hidden_dim, device=device)

    def forward(self, x: Tensor, h: Tensor, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Advance the core by one step.

        Args:
            x: ``(B, input_dim)`` input features.
            h: ``(B, hidden_dim)`` hidden state before the step.
            reset: Optional ``(B,)`` bool/float mask; where true/1 the state is zeroed
                before the step (the step starts a new episode).

        Returns:
            ``(out, h_next)``, both ``(B, hidden_dim)`` (the GRU output is its state).
        """
        if reset is not None:
            h = h * (1.0 - reset.to(h.dtype)).unsqueeze(-1)
        h_next: Tensor = self.cell(x, h)
        return h_next, h_next

    def forward_sequence(
        self, x: Tensor, h0: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the core over a sequence, exactly as repeated :meth:`forward` calls would.

        Args:
            x: ``(T, B, input_dim)`` input features.
            h0: ``(B, hidden_dim)`` hidden state before the first step.
            resets: Optional ``(T, B)`` mask; ``resets[t]`` is applied before step ``t``.

        Returns:
            ``(outs, h_T)`` with ``outs`` of shape ``(T, B, hidden_dim)`` and the final
            ``(B, hidden_dim)`` state.
        """
        h = h0
        outs: list[Tensor] = []
        for t in range(x.shape[0]):
            out, h = self(x[t], h, None if resets is None else resets[t])
            outs.append(out)
        if not outs:
            return x.new_zeros(0, h0.shape[0], self.hidden_dim), h0
        return torch.stack(outs), h


class ActionDistribution:
    """Product of independent categoricals over one or more sub-actions.

    For a plain discrete action space (``multi=False``) actions are ``(B,)``; for a
    multi-discrete one they are ``(B, K)`` with one column per sub-action.

    Attributes:
        categoricals: One :class:`~torch.distributions.Categorical` per sub-action.
        multi: Whether actions carry a trailing sub-action dimension.
    """

    def __init__(self, logits: list[Tensor], multi: bool) -> None:
        """Wrap per-sub-action logits.

        Args:
            logits: One ``(B, n_k)`` logits tensor per sub-action.
            multi: Whether this is a multi-discrete distribution.

        Raises:
            ValueError: If a discrete distribution gets more than one logits tensor.
        """
        if not logits or (not multi and len(logits) != 1):
            raise ValueError("discrete needs exactly one logits tensor, multi-discrete >= 1")
        self.categoricals = [Categorical(logits=lg) for lg in logits]
        self.multi = multi

    def _pack(self, parts: list[Tensor]) -> Tensor:
        """Combine per-sub-action ``(B,)`` actions into the action-space layout."""
        return torch.stack(parts, dim=-1) if self.multi else parts[0]

    def _unpack(self, actions: Tensor) -> list[Tensor]:
        """Split actions in the action-space layout into per-sub-action ``(B,)`` tensors."""
        if not self.multi:
            return [actions]
        return list(actions.unbind(dim=-1))

    def sample(self) -> Tensor:
        """Draw an action per batch element.

        Returns:
            ``(B,)`` long for discrete, ``(B, K)`` long for multi-discrete.
        """
        # torch.distributions is unannotated, hence the ignores on its methods.
        return self._pack([c.sample() for c in self.categoricals])  # type: ignore[no-untyped-call]

    def mode(self) -> Tensor:
        """Return the most likely action per batch element (same layout as :meth:`sample`)."""
        return self._pack([c.logits.argmax(dim=-1) for c in self.categoricals])

    def log_prob(self, actions: Tensor) -> Tensor:
        """Return the log-probability of ``actions``, summed over sub-actions.

        Args:
            actions: Actions in the layout returned by :meth:`sample`.

        Returns:
            ``(B,)`` log-probabilities.
        """
        parts = self._unpack(actions.long())
        return torch.stack(
            [
                c.log_prob(a)  # type: ignore[no-untyped-call]
                for c, a in zip(self.categoricals, parts, strict=True)
            ]
        ).sum(dim=0)

    def entropy(self) -> Tensor:
        """Return the entropy, summed over sub-actions (they are independent).

        Returns:
            ``(B,)`` entropies.
        """
        entropies = [c.entropy() for c in self.categoricals]  # type: ignore[no-untyped-call]
        return torch.stack(entropies).sum(dim=0)


class DiscreteHead(nn.Module):
    """Policy head for a single categorical action.

    Attributes:
        n: Number of actions.
    """

    def __init__(self, input_dim: int, n: int) -> None:
        """Build the head.

        Args:
            input_dim: Size of the input features.
            n: Number of actions.

        Raises:
            ValueError: If ``n`` is not positive.
        """
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        self.n = n
        self.linear = nn.Linear(input_dim, n)
        # A tiny gain keeps the initial policy near uniform, i.e. maximally exploratory.
        _init_linear_or_conv(self.linear, 0.01)

    def forward(self, features: Tensor) -> ActionDistribution:
        """Return the action distribution for ``(B, input_dim)`` features."""
        logits: Tensor = self.linear(features)
        return ActionDistribution([logits], multi=False)


class MultiDiscreteHead(nn.Module):
    """Policy head for independent categorical sub-actions.

    Attributes:
        nvec: Number of choices of each sub-action.
    """

    def __init__(self, input_dim: int, nvec: tuple[int, ...]) -> None:
        """Build the head.

        Args:
            input_dim: Size of the input features.
            nvec: Number of choices of each sub-action.

        Raises:
            ValueError: If ``nvec`` is empty or holds a non-positive entry.
        """
        super().__init__()
        if not nvec or min(nvec) < 1:
            raise ValueError(f"nvec must be a non-empty tuple of positives, got {nvec}")
        self.nvec = tuple(nvec)
        self.linear = nn.Linear(input_dim, sum(self.nvec))
        _init_linear_or_conv(self.linear, 0.01)

    def forward(self, features: Tensor) -> ActionDistribution:
        """Return the action distribution for ``(B, input_dim)`` features."""
        logits: Tensor = self.linear(features)
        return ActionDistribution(list(torch.split(logits, list(self.nvec), dim=-1)), multi=True)


class ValueHeads(nn.Module):
    """Separate linear value heads, one per reward stream (e.g. extrinsic and intrinsic).

    Attributes:
        streams: Names of the value streams.
    """

    def __init__(self, input_dim: int, streams: tuple[str, ...] = ("ext", "int")) -> None:
        """Build the heads.

        Args:
            input_dim: Size of the input features.
            streams: Names of the value streams; must be non-empty and unique.

        Raises:
            ValueError: If ``streams`` is empty or has duplicates.
        """
        super().__init__()
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be non-empty and unique, got {streams}")
        self.streams = tuple(streams)
        self.heads = nn.ModuleDict({name: nn.Linear(input_dim, 1) for name in self.streams})
        for head in self.heads.values():
            _init_linear_or_conv(head, 1.0)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Return a ``(B,)`` value estimate per stream for ``(B, input_dim)`` features."""
        return {name: self.heads[name](features).squeeze(-1) for name in self.streams}


class PolicyNetwork(nn.Module, abc.ABC):
    """What the host's agent and PPO learner drive.

    The built-in :class:`ActorCritic` is one; an online curiosity mechanism may
    own another (:meth:`pamiqx.api.Curiosity.policy_network`).

    The state stored with each step is the hidden state *before* that step, so a
    training window replays exactly from it: ``forward`` for step ``t``, then
    ``fold_action`` with the actions sampled there, then ``forward`` for ``t + 1``.
    ``forward_sequence`` must compute what that chain of calls computes.

    Attributes:
        internal_action_dim: Width ``Z`` of the internal action (0 for none).
    """

    internal_action_dim: int = 0

    @property
    @abc.abstractmethod
    def is_recurrent(self) -> bool:
        """Whether the network carries a recurrent state (PPO then trains on windows)."""

    @property
    @abc.abstractmethod
    def hidden_dim(self) -> int:
        """Width of the flat ``(B, hidden_dim)`` state (0 when there is none)."""

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """Return the state at the start of a run, ``(batch, hidden_dim)`` (zeros by default)."""
        return torch.zeros(batch, self.hidden_dim, device=device)

    @abc.abstractmethod
    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Run one step for ``(B, ...)`` observations from the state before it.

        Args:
            obs: ``(B, ...)`` observations.
            hidden: ``(B, hidden_dim)`` state before the step.
            reset: Optional ``(B,)`` episode-start mask; those states start afresh.
        """

    def fold_action(self, hidden: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Return the state after the actions sampled at this step are known.

        Networks that feed their last actions back to themselves store them in the
        state here; the default keeps the state unchanged.
        """
        return hidden

    @abc.abstractmethod
    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Run a window of consecutive steps as ``forward`` and ``fold_action`` would.

        Args:
            obs: ``(T, B, ...)`` observations.
            hidden0: ``(B, hidden_dim)`` state before the first step.
            resets: Optional ``(T, B)`` episode-start mask.
            actions: ``(T, B, ...)`` world actions taken at each step.
            internal: ``(T, B, Z)`` internal actions taken, or None.

        Returns:
            A step whose ``dist``, ``values``, ``internal`` and ``internal_mask`` cover
            ``T * B`` rows in time-major order (row ``t * B + b``).
        """


class ActorCritic(PolicyNetwork):
    """Encoder → optional GRU core → MLP torso → action head and value heads.

    Non-recurrent models use a ``(B, 0)`` hidden state so that callers can thread a state
    through both kinds identically.

    Attributes:
        encoder: Observation encoder (exposes ``feature_dim``).
        core: The recurrent core, or ``None`` for a feed-forward model.
        torso: MLP applied to the (recurrent) features.
        policy: Action head.
        values: Value heads.
    """

    def __init__(
        self,
        encoder: nn.Module,
        action: tuple[str, tuple[int, ...]],
        recurrent_dim: int | None = None,
        hidden: tuple[int, ...] = (256,),
        value_streams: tuple[str, ...] = ("ext", "int"),
    ) -> None:
        """Build the model.

        Args:
            encoder: Module mapping observations to ``(B, feature_dim)`` features; must have
                an integer ``feature_dim`` attribute.
            action: ``("discrete", (n,))`` or ``("multi_discrete", nvec)``.
            recurrent_dim: Hidden size of the GRU core, or ``None`` for no core.
            hidden: Widths of the ReLU torso layers (may be empty).
            value_streams: Names of the value streams.

        Raises:
            ValueError: If the encoder lacks ``feature_dim`` or ``action`` is malformed.
        """
        super().__init__()
        feature_dim = getattr(encoder, "feature_dim", None)
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError("encoder must have a positive integer `feature_dim` attribute")
        self.encoder = encoder
        self.core = RecurrentCore(feature_dim, recurrent_dim) if recurrent_dim else None
        prev = recurrent_dim if recurrent_dim else feature_dim

        torso: list[nn.Module] = []
        for width in hidden:
            linear = nn.Linear(prev, width)
            _init_linear_or_conv(linear, math.sqrt(2.0))
            torso += [linear, nn.ReLU()]
            prev = width
        self.torso = nn.Sequential(*torso)

        kind, sizes = action
        if kind == "discrete":
            if len(sizes) != 1:
                raise ValueError(f"discrete action needs exactly one size, got {sizes}")
            self.policy: nn.Module = DiscreteHead(prev, sizes[0])
        elif kind == "multi_discrete":
            self.policy = MultiDiscreteHead(prev, sizes)
        else:
            raise ValueError(f"unknown action kind {kind!r}; expected discrete|multi_discrete")
        self.values = ValueHeads(prev, value_streams)

    @property
    def is_recurrent(self) -> bool:
        """Whether the model carries a recurrent state."""
        return self.core is not None

    @property
    def hidden_dim(self) -> int:
        """Width of the hidden state (0 for a feed-forward model)."""
        return 0 if self.core is None else self.core.hidden_dim

    def _heads(self, features: Tensor) -> tuple[ActionDistribution, dict[str, Tensor]]:
        """Apply torso, action head and value heads to ``(N, D)`` features."""
        x: Tensor = self.torso(features)
        dist: ActionDistribution = self.policy(x)
        values: dict[str, Tensor] = self.values(x)
        return dist, values

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Run one step for a batch (a reset zeroes the GRU state first).

        Returns:
            The action distribution, ``(B,)`` values per stream and the next state.
        """
        features: Tensor = self.encoder(obs)
        if self.core is not None:
            features, hidden = self.core(features, hidden, reset)
        dist, values = self._heads(features)
        return PolicyStep(dist, values, hidden)

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None = None,
        actions: Tensor | None = None,
        internal: Tensor | None = None,
    ) -> PolicyStep:
        """Run a window of consecutive steps, as repeated :meth:`forward` calls would.

        The encoder sees all ``T * B`` observations in one batch; only the core is
        stepped. Actions are not inputs of this network.

        Returns:
            ``dist`` and ``values`` over ``T * B`` rows, and the final state
            (``hidden0`` for a feed-forward model).
        """
        steps, batch = obs.shape[0], obs.shape[1]
        features: Tensor = self.encoder(obs.reshape(steps * batch, *obs.shape[2:]))
        hidden = hidden0
        if self.core is not None:
            seq = features.reshape(steps, batch, -1)
            outs, hidden = self.core.forward_sequence(seq, hidden0, resets)
            features = outs.reshape(steps * batch, -1)
        dist, values = self._heads(features)
        return PolicyStep(dist, values, hidden)


def one_hot_width(nvec: tuple[int, ...]) -> int:
    """Return the width of :func:`one_hot_actions`'s encoding: the sum of ``nvec``."""
    return int(sum(nvec))


def one_hot_actions(actions: Tensor, nvec: tuple[int, ...], discrete: bool | None = None) -> Tensor:
    """One-hot encode actions, concatenating the codes of a multi-discrete action's parts.

    Args:
        actions: ``(...)`` integers for a discrete space, or ``(..., len(nvec))`` for a
            multi-discrete one (the layouts the host stores).
        nvec: Choices of each sub-action (``ActionSpec.nvec``).
        discrete: Whether the space is discrete (no sub-action axis); by default, when
            ``nvec`` has one entry. Pass False for a multi-discrete space of one sub-action.
            The layout is never guessed from the shape: ``(T, 1)`` is one world's
            discrete actions, not one multi-discrete action per step.

    Returns:
        ``(..., sum(nvec))`` float32.
    """
    if discrete is None:
        discrete = len(nvec) == 1
    if discrete:
        actions = actions.unsqueeze(-1)
    parts = [F.one_hot(actions[..., i].long(), n) for i, n in enumerate(nvec)]
    return torch.cat(parts, dim=-1).float()
