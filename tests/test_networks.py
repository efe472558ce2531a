import math

import pytest
import torch
from torch.distributions import Categorical

from pamiqx.api import (
    ActionDistribution,
    ConvEncoder,
    DiscreteHead,
    MLPEncoder,
    MultiDiscreteHead,
    ValueHeads,
    one_hot_actions,
    one_hot_width,
)
from pamiqx.models.actor_critic import ActorCritic
from pamiqx.models.recurrent import RecurrentCore


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- encoders ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 84, 128])
def test_conv_encoder_shapes(size: int) -> None:
    enc = ConvEncoder((size, size, 3), feature_dim=128)
    obs = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    out = enc(obs)
    assert out.shape == (2, 128)
    assert enc.feature_dim == 128
    assert (out >= 0).all()  # final ReLU


def test_conv_encoder_non_square_and_extra_channels() -> None:
    enc = ConvEncoder((48, 96, 3), feature_dim=32, channels=(16, 32, 32, 32))
    assert enc(torch.zeros(1, 48, 96, 3)).shape == (1, 32)


def test_conv_encoder_too_small_raises() -> None:
    with pytest.raises(ValueError):
        ConvEncoder((4, 4, 3))


def test_conv_encoder_uint8_float_equivalence() -> None:
    enc = ConvEncoder((64, 64, 3), feature_dim=64)
    obs = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    assert torch.allclose(enc(obs), enc(obs.float() / 255.0), atol=1e-6)


def test_mlp_encoder_shapes() -> None:
    for act in ("tanh", "relu", "elu"):
        enc = MLPEncoder(5, feature_dim=16, hidden=(32, 32), activation=act)
        assert enc.feature_dim == 16
        assert enc(torch.randn(4, 5)).shape == (4, 16)
    assert MLPEncoder(3, hidden=())(torch.randn(2, 3)).shape == (2, 64)


def test_mlp_encoder_bad_activation() -> None:
    with pytest.raises(ValueError, match="activation"):
        MLPEncoder(4, activation="sigmoid")


# --- recurrent core ---------------------------------------------------------------------


def test_recurrent_sequence_matches_stepwise() -> None:
    core = RecurrentCore(6, 8)
    steps, batch = 7, 3
    x = torch.randn(steps, batch, 6)
    h0 = torch.randn(batch, 8)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[3, 1] = True
    resets[5, 0] = True
    resets[0, 2] = True

    outs, h_last = core.forward_sequence(x, h0, resets)
    h = h0
    for t in range(steps):
        out, h = core(x[t], h, resets[t])
        assert torch.allclose(outs[t], out, atol=1e-6)
    assert outs.shape == (steps, batch, 8)
    assert torch.allclose(h_last, h, atol=1e-6)


def test_recurrent_reset_zeroes_state() -> None:
    core = RecurrentCore(4, 5)
    x = torch.randn(2, 4)
    h = torch.randn(2, 5)
    out_reset, h_reset = core(x, h, torch.tensor([1.0, 0.0]))
    out_zero, _ = core(x, core.initial_state(2, "cpu"))
    out_keep, _ = core(x, h)
    assert torch.allclose(out_reset[0], out_zero[0])
    assert torch.allclose(out_reset[1], out_keep[1])
    assert torch.equal(out_reset, h_reset)
    assert core.initial_state(3, "cpu").shape == (3, 5)


# --- action heads -------------------------------------------------------------------------


def test_discrete_head() -> None:
    head = DiscreteHead(10, 7)
    feats = torch.randn(4, 10)
    dist = head(feats)
    actions = dist.sample()
    assert actions.shape == (4,) and actions.dtype == torch.long
    assert dist.mode().shape == (4,)
    logp = dist.log_prob(actions)
    assert logp.shape == (4,) and dist.entropy().shape == (4,)
    manual = Categorical(logits=head.linear(feats)).log_prob(actions)
    assert torch.allclose(logp, manual)
    # The 0.01-gain init makes a fresh policy nearly uniform.
    assert (dist.entropy() > 0.99 * math.log(7)).all()


def test_multi_discrete_head() -> None:
    nvec = (3, 3, 3, 2, 2)
    head = MultiDiscreteHead(10, nvec)
    feats = torch.randn(4, 10)
    dist = head(feats)
    actions = dist.sample()
    assert actions.shape == (4, len(nvec)) and actions.dtype == torch.long
    assert dist.mode().shape == (4, len(nvec))
    for k, n in enumerate(nvec):
        assert ((actions[:, k] >= 0) & (actions[:, k] < n)).all()
    logp = dist.log_prob(actions)
    assert logp.shape == (4,) and dist.entropy().shape == (4,)
    logits = head.linear(feats).split(nvec, dim=-1)
    manual = sum(Categorical(logits=lg).log_prob(actions[:, k]) for k, lg in enumerate(logits))
    assert isinstance(manual, torch.Tensor)
    assert torch.allclose(logp, manual)
    max_entropy = sum(math.log(n) for n in nvec)
    assert (dist.entropy() > 0.99 * max_entropy).all()


def test_action_distribution_mode_is_argmax() -> None:
    dist = ActionDistribution([torch.tensor([[0.0, 5.0, 1.0]])], multi=False)
    assert dist.mode().tolist() == [1]
    with pytest.raises(ValueError):
        ActionDistribution([torch.zeros(1, 2), torch.zeros(1, 2)], multi=False)


def test_value_heads() -> None:
    heads = ValueHeads(8)
    out = heads(torch.randn(5, 8))
    assert set(out) == {"ext", "int"}
    assert all(v.shape == (5,) for v in out.values())
    assert not torch.allclose(out["ext"], out["int"])
    with pytest.raises(ValueError):
        ValueHeads(8, ("a", "a"))


# --- actor-critic -------------------------------------------------------------------------


@pytest.mark.parametrize("recurrent_dim", [None, 16])
@pytest.mark.parametrize("action", [("discrete", (7,)), ("multi_discrete", (3, 3, 3, 2, 2))])
def test_actor_critic_step_and_sequence(
    recurrent_dim: int | None, action: tuple[str, tuple[int, ...]]
) -> None:
    model = ActorCritic(MLPEncoder(6, 12), action, recurrent_dim=recurrent_dim, hidden=(32,))
    assert model.is_recurrent == (recurrent_dim is not None)
    steps, batch = 5, 3
    h0 = model.initial_state(batch, "cpu")
    assert h0.shape == (batch, recurrent_dim or 0)

    obs = torch.randn(steps, batch, 6)
    resets = torch.zeros(steps, batch)
    resets[2, 0] = 1.0
    out = model.forward_sequence(obs, h0, resets)
    dist, values, h_last = out.dist, out.values, out.hidden
    assert set(values) == {"ext", "int"}
    assert all(v.shape == (steps * batch,) for v in values.values())
    actions = dist.sample()
    assert dist.log_prob(actions).shape == (steps * batch,)
    assert h_last.shape == h0.shape

    # Time-major rows of the window match stepping the model one step at a time.
    h = h0
    for t in range(steps):
        step = model(obs[t], h, resets[t])
        step_dist, step_values, h = step.dist, step.values, step.hidden
        rows = slice(t * batch, (t + 1) * batch)
        assert torch.allclose(step_dist.log_prob(actions[rows]), dist.log_prob(actions)[rows])
        for name in ("ext", "int"):
            assert torch.allclose(step_values[name], values[name][rows], atol=1e-6)
    assert torch.allclose(h, h_last, atol=1e-6)


def test_actor_critic_conv_recurrent() -> None:
    model = ActorCritic(ConvEncoder((32, 32, 3), 64), ("discrete", (4,)), recurrent_dim=32)
    obs = torch.randint(0, 256, (2, 3, 32, 32, 3), dtype=torch.uint8)
    out = model.forward_sequence(obs, model.initial_state(3, "cpu"))
    dist, values, h = out.dist, out.values, out.hidden
    assert dist.sample().shape == (6,)
    assert values["int"].shape == (6,) and h.shape == (3, 32)


def test_actor_critic_invalid_config() -> None:
    with pytest.raises(ValueError):
        ActorCritic(torch.nn.Linear(3, 3), ("discrete", (3,)))
    with pytest.raises(ValueError):
        ActorCritic(MLPEncoder(3), ("continuous", (3,)))
    with pytest.raises(ValueError):
        ActorCritic(MLPEncoder(3), ("discrete", (3, 2)))


def test_value_loss_reaches_encoder() -> None:
    enc = ConvEncoder((32, 32, 3), 32)
    model = ActorCritic(enc, ("discrete", (3,)), recurrent_dim=16, hidden=(16,))
    obs = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    values = model(obs, model.initial_state(4, "cpu")).values
    loss = sum(((v - 1.0) ** 2).mean() for v in values.values())
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_policy_learns_to_prefer_target_action() -> None:
    model = ActorCritic(MLPEncoder(4, 16), ("discrete", (5,)), hidden=(16,))
    obs = torch.randn(32, 4)
    hidden = model.initial_state(32, "cpu")
    target = torch.full((32,), 2, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def mean_logp() -> torch.Tensor:
        dist = model(obs, hidden).dist
        return dist.log_prob(target).mean()

    before = mean_logp().item()
    for _ in range(20):
        opt.zero_grad()
        (-mean_logp()).backward()
        opt.step()
    after = mean_logp().item()
    assert after > before + 0.1


def test_one_hot_actions_discrete_and_multi_discrete() -> None:

    assert one_hot_actions(torch.tensor([2, 0]), (4,)).tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]
    # A multi-discrete space of one sub-action keeps its sub-action axis.
    multi_one = one_hot_actions(torch.tensor([[2], [1]]), (3,), discrete=False)
    assert multi_one.tolist() == [[0, 0, 1], [0, 1, 0]]
    # One world's discrete actions, (T, 1) or (1,), are never read as sub-action columns.
    assert one_hot_actions(torch.tensor([[2], [1]]), (3,)).shape == (2, 1, 3)
    assert one_hot_actions(torch.tensor([2]), (3,)).tolist() == [[0, 0, 1]]
    encoded = one_hot_actions(torch.tensor([[[2, 0, 1]]]), (3, 3, 2))  # (T, E, K)
    assert encoded.shape == (1, 1, one_hot_width((3, 3, 2)))
    assert encoded.tolist() == [[[0, 0, 1, 1, 0, 0, 0, 1]]]
