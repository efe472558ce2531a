"""The reference cores: the scan, the QLSTM/QGRU/TTT stacks, the core policy and its plugins."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from pamiqx.api import ActionSpec, BuildContext, MLPEncoder, ObservationSpec
from pamiqx.api.cores import (
    REFERENCE_SIZES,
    CoreBlock,
    CoreKind,
    CoreSizes,
    RecurrentStack,
    TTTLayer,
    linear_scan,
)
from pamiqx.api.errors import PluginError
from pamiqx.builtin.cores import CoreOptions, QGRUPlugin, QLSTMPlugin, TTTOptions, TTTPlugin
from pamiqx.models.core_policy import CorePolicy

KINDS: list[CoreKind] = ["qlstm", "qgru", "ttt"]
TINY = CoreSizes(depth=2, width=8, ff_ratio=2.0, heads=2, inner_ratio=2.0, chunk=4)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def loop_recurrence(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` one step at a time (what the scan must equal)."""
    h, out = h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out)


# --- the scan ----------------------------------------------------------------------------


def test_scan_equals_the_recurrence_for_every_window_length_with_resets() -> None:
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for steps in range(1, 301):
        a = torch.rand(steps, 3, 2, dtype=torch.float64, generator=generator)
        b = torch.randn(steps, 3, 2, dtype=torch.float64, generator=generator)
        h0 = torch.randn(3, 2, dtype=torch.float64, generator=generator)
        resets = torch.rand(steps, 3, 1, generator=generator) < 0.05
        a = a.masked_fill(resets, 0.0)
        error = (linear_scan(a, b, h0) - loop_recurrence(a, b, h0)).abs().max().item()
        worst = max(worst, error)
    assert worst < 1e-6


def test_scan_reset_drops_everything_before_it() -> None:
    a = torch.full((6, 1), 0.9, dtype=torch.float64)
    b = torch.ones(6, 1, dtype=torch.float64)
    a[3] = 0.0
    with_state = linear_scan(a, b, torch.tensor([100.0], dtype=torch.float64))
    from_zero = linear_scan(a, b, torch.tensor([0.0], dtype=torch.float64))
    assert torch.equal(with_state[3:], from_zero[3:])
    assert with_state[2, 0] > from_zero[2, 0] + 50


def test_scan_is_stable_on_long_windows_of_small_gates_in_float32() -> None:
    # A cumulative-product formulation divides by prod(a) ~ 1e-3 ** 4096 here.
    steps = 4096
    a = torch.full((steps, 4), 1e-3)
    a[::7] = 0.999
    b = torch.randn(steps, 4)
    got = linear_scan(a, b)
    want = loop_recurrence(a.double(), b.double(), torch.zeros(4, dtype=torch.float64))
    assert torch.isfinite(got).all()
    assert (got.double() - want).abs().max().item() < 1e-4


@pytest.mark.parametrize("steps", [1, 2, 5, 8])
def test_scan_gradients_match_finite_differences(steps: int) -> None:
    a = torch.rand(steps, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(steps, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (a, b, h0))


def test_scan_rejects_mismatched_or_empty_windows() -> None:
    with pytest.raises(ValueError, match="same shape"):
        linear_scan(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="at least one step"):
        linear_scan(torch.zeros(0, 2), torch.zeros(0, 2))


# --- stacks ------------------------------------------------------------------------------


def _stack(kind: CoreKind, input_dim: int = 5, sizes: CoreSizes = TINY) -> RecurrentStack:
    return RecurrentStack(kind, input_dim, sizes).double()


def _busy_state(stack: RecurrentStack, batch: int) -> Tensor:
    """A state reached by stepping (TTT worlds at different positions in their chunk)."""
    state = stack.initial_state(batch).double()
    for t in range(batch + 2):
        x = torch.randn(batch, stack.input_dim, dtype=torch.float64)
        stepped = stack.step(x, state)[1]
        # World b stops after b + 2 steps, so its chunk position differs from the others'.
        state = torch.where(torch.arange(batch).unsqueeze(-1) >= t - 1, stepped, state)
    return state


@pytest.mark.parametrize("kind", KINDS)
def test_window_equals_stepping_with_resets(kind: CoreKind) -> None:
    stack = _stack(kind)
    steps, batch = 23, 3
    x = torch.randn(steps, batch, 5, dtype=torch.float64)
    resets = torch.rand(steps, batch) < 0.15
    state0 = _busy_state(stack, batch)
    y, state, surprisal = stack.forward_window_with_surprisal(x, state0, resets)
    stepped, states, surprisals = [], state0, []
    for t in range(steps):
        out, states, s = stack.step_with_surprisal(x[t], states, resets[t])
        stepped.append(out)
        surprisals.append(s)
    torch.testing.assert_close(y, torch.stack(stepped), rtol=0, atol=1e-9)
    torch.testing.assert_close(state, states, rtol=0, atol=1e-9)
    assert y.shape == (steps, batch, TINY.width)
    assert state.shape == (batch, stack.state_dim)
    if kind == "ttt":
        assert surprisal is not None
        assert surprisal.shape == (steps, batch, TINY.depth, TINY.heads)
        stepped_surprisal = torch.stack([s for s in surprisals if s is not None])
        torch.testing.assert_close(surprisal, stepped_surprisal, rtol=0, atol=1e-9)
    else:
        assert surprisal is None


@pytest.mark.parametrize("kind", ["qlstm", "qgru"])
def test_window_states_are_the_states_stepping_reaches(kind: CoreKind) -> None:
    stack = _stack(kind)
    steps, batch = 37, 3
    x = torch.randn(steps, batch, 5, dtype=torch.float64)
    resets = torch.rand(steps, batch) < 0.2
    state = _busy_state(stack, batch)
    y, every = stack.forward_window_states(x, state, resets)
    assert every.shape == (steps, batch, stack.state_dim)
    for t in range(steps):
        out, state = stack.step(x[t], state, resets[t])
        torch.testing.assert_close(y[t], out, rtol=0, atol=1e-9)
        torch.testing.assert_close(every[t], state, rtol=0, atol=1e-9)


def test_window_states_refuse_the_ttt_core() -> None:
    stack = _stack("ttt")
    with pytest.raises(ValueError, match="qlstm or qgru"):
        stack.forward_window_states(
            torch.zeros(2, 1, 5, dtype=torch.float64), _busy_state(stack, 1)
        )


@pytest.mark.parametrize("kind", KINDS)
def test_windows_chain_through_their_states(kind: CoreKind) -> None:
    stack = _stack(kind)
    x = torch.randn(19, 2, 5, dtype=torch.float64)
    state0 = stack.initial_state(2).double()
    whole, end = stack.forward_window(x, state0)
    first, middle = stack.forward_window(x[:7], state0)
    second, end_chained = stack.forward_window(x[7:], middle)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=1e-9)
    torch.testing.assert_close(end_chained, end, rtol=0, atol=1e-9)


def _chunk_clock_only(stack: RecurrentStack, state: Tensor) -> Tensor:
    """A fresh state, except that TTT blocks keep their position in the chunk.

    A reset drops the fast weights but not the chunk clock, which counts absolute
    steps so that windows and single steps chunk alike.
    """
    fresh = torch.zeros_like(state)
    if stack.kind == "ttt":
        starts = torch.tensor([0, *stack.state_widths]).cumsum(0)[:-1]
        fresh[:, starts] = state[:, starts]
    return fresh


@pytest.mark.parametrize("kind", KINDS)
def test_a_reset_forgets_the_state_before_it(kind: CoreKind) -> None:
    stack = _stack(kind)
    x = torch.randn(9, 2, 5, dtype=torch.float64)
    resets = torch.zeros(9, 2, dtype=torch.bool)
    resets[4] = True
    busy = _busy_state(stack, 2)
    after_reset = stack.forward_window(x, busy, resets)[0][4:]
    fresh_state = _chunk_clock_only(stack, stack.forward_window(x[:4], busy)[1])
    fresh = stack.forward_window(x[4:], fresh_state)[0]
    torch.testing.assert_close(after_reset, fresh, rtol=0, atol=1e-9)
    # Without the reset the past matters.
    assert not torch.allclose(stack.forward_window(x, busy)[0][4:], fresh, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_through_a_window_match_finite_differences(kind: CoreKind) -> None:
    sizes = CoreSizes(depth=1, width=4, ff_ratio=1.0, heads=2, inner_ratio=1.0, chunk=2)
    stack = _stack(kind, input_dim=4, sizes=sizes)
    x = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    state = (0.1 * torch.randn(2, stack.state_dim, dtype=torch.float64)).requires_grad_()
    resets = torch.tensor([[0, 0], [0, 1], [0, 0], [1, 0], [0, 0]], dtype=torch.bool)
    if kind == "ttt":
        # The chunk position is an index, not a differentiable quantity.
        position = torch.zeros_like(state)
        position[:, 0] = 1.0
        state = (state * (1 - position)).detach().requires_grad_()

    def run(x: Tensor, state: Tensor) -> Tensor:
        y, end = stack.forward_window(x, state, resets)
        return torch.cat([y.flatten(), end.flatten()])

    # fast_mode compares random directional derivatives with finite differences.
    assert torch.autograd.gradcheck(run, (x, state), fast_mode=True)


def test_dropout_applies_only_when_asked() -> None:
    sizes = CoreSizes(depth=2, width=16, dropout=0.5)
    stack = RecurrentStack("qlstm", 16, sizes)
    x = torch.randn(6, 3, 16)
    state = stack.initial_state(3)
    stack.eval()
    evaluated = stack.forward_window(x, state)[0]
    stack.train()  # PPO puts the policy in train mode: that must not switch dropout on.
    torch.testing.assert_close(stack.forward_window(x, state)[0], evaluated)
    torch.testing.assert_close(stack.step(x[0], state)[0], evaluated[0])
    regularized = stack.forward_window(x, state, regularize=True)[0]
    assert not torch.allclose(regularized, evaluated)


def test_state_stays_float32_under_bf16_autocast() -> None:
    stack = RecurrentStack("qlstm", 8, CoreSizes(depth=1, width=8))
    state = stack.initial_state(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, new = stack.forward_window(torch.randn(4, 2, 8), state)
        _, stepped = stack.step(torch.randn(2, 8), new)
    assert new.dtype == torch.float32 and stepped.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_reference_sizes_and_their_state_widths() -> None:
    qlstm = REFERENCE_SIZES["qlstm"]
    assert (qlstm.depth, qlstm.width, qlstm.ff_ratio, qlstm.dropout) == (8, 1024, 4.0, 0.1)
    assert REFERENCE_SIZES["qgru"] == qlstm
    with torch.device("meta"):
        stack = RecurrentStack("qlstm", 128, qlstm)
    assert stack.state_dim == 8 * 1024  # the reference's 8 x 1024 hidden state per world
    ttt = REFERENCE_SIZES["ttt"]
    assert (ttt.depth, ttt.width, ttt.heads, ttt.chunk) == (16, 1024, 32, 64)
    layer = TTTLayer(ttt.width, ttt.heads, ttt.inner_ratio, ttt.chunk, ttt.base_lr)
    # Position, anchor and running change of two fast layers of 32 heads, 32 x 128 each.
    assert layer.state_dim == 1 + 2 * 2 * 32 * 128 * 32
    block = stack.blocks[0]
    assert isinstance(block, CoreBlock)
    assert block.ff.hidden_dim == 4096


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        RecurrentStack("qlstm", 4, CoreSizes(depth=0))
    with pytest.raises(ValueError, match="dropout"):
        RecurrentStack("qgru", 4, CoreSizes(dropout=1.0))
    with pytest.raises(ValueError, match="divisible"):
        RecurrentStack("ttt", 4, CoreSizes(width=10, heads=3))
    with pytest.raises(ValueError, match="unknown core kind"):
        RecurrentStack("lstm", 4)  # type: ignore[arg-type]


# --- TTT ---------------------------------------------------------------------------------


def naive_ttt(layer: TTTLayer, x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Chunkwise TTT one step at a time, with autograd for the inner gradients.

    Within a chunk each step's gradient is taken at the chunk's first weights; the
    change from the learned start decays and takes ``-lr * gradient`` every step.
    """
    steps, batch, _ = x.shape
    q, k, v, lr, log_decay = (t.detach() for t in layer._projections(x))
    n, e, d = layer.heads, layer.inner, layer.head_dim
    w1, w2 = layer.w1_init.detach(), layer.w2_init.detach()
    delta = [x.new_zeros(batch, n, e, d), x.new_zeros(batch, n, d, e)]
    anchor = [t.clone() for t in delta]
    outputs, surprisals = [], []
    for t in range(steps):
        alive = keep[t].view(batch, 1, 1, 1)
        if t % layer.chunk == 0:
            anchor = [t.clone() for t in delta]
        delta = [p * alive for p in delta]
        anchor = [p * alive for p in anchor]
        a1 = (w1 + anchor[0]).requires_grad_()
        a2 = (w2 + anchor[1]).requires_grad_()
        with torch.enable_grad():
            z2 = torch.einsum(
                "bnde,bne->bnd", a2, F.silu(torch.einsum("bned,bnd->bne", a1, k[:, :, t]))
            )
            loss = 0.5 * (z2 - v[:, :, t]).pow(2).mean(-1)
            g1, g2 = torch.autograd.grad(loss.sum(), [a1, a2])
        surprisals.append(loss.detach())
        for i, g in enumerate([g1, g2]):
            decay = log_decay[:, i, :, t].exp()[..., None, None]
            delta[i] = decay * delta[i] - lr[:, i, :, t][..., None, None] * g
        hidden = F.silu(torch.einsum("bned,bnd->bne", w1 + delta[0], q[:, :, t]))
        outputs.append(torch.einsum("bnde,bne->bnd", w2 + delta[1], hidden).reshape(batch, -1))
    return layer.fc_out(torch.stack(outputs)), torch.stack(surprisals)


@pytest.mark.parametrize("chunk", [1, 3, 4])
def test_ttt_dual_form_equals_per_step_gradient_descent(chunk: int) -> None:
    layer = TTTLayer(8, heads=2, inner_ratio=2.0, chunk=chunk, base_lr=(0.05, 0.5)).double()
    x = torch.randn(11, 2, 8, dtype=torch.float64)
    keep = torch.ones(11, 2, dtype=torch.float64)
    keep[6, 1] = 0.0
    want_y, want_surprisal = naive_ttt(layer, x, keep)
    with torch.no_grad():
        y, _, surprisal = layer.window(x, torch.zeros(2, layer.state_dim).double(), keep)
    assert surprisal is not None
    torch.testing.assert_close(y, want_y, rtol=0, atol=1e-10)
    torch.testing.assert_close(surprisal, want_surprisal, rtol=0, atol=1e-10)


def test_ttt_surprisal_falls_as_an_input_repeats() -> None:
    sizes = CoreSizes(depth=1, width=16, heads=2, chunk=4, base_lr=(0.05, 0.3))
    stack = RecurrentStack("ttt", 16, sizes)
    x = torch.randn(1, 3, 16).expand(96, 3, 16)
    with torch.no_grad():
        _, _, surprisal = stack.forward_window_with_surprisal(x, stack.initial_state(3))
    assert surprisal is not None
    assert (surprisal >= 0).all()
    # The decay towards the learned start keeps it from reaching 0 (~0.6-0.8 of the first).
    assert (surprisal[-1] < 0.9 * surprisal[0]).all()


# --- the policy network and the plugins ---------------------------------------------------


def _policy(kind: CoreKind, action: tuple[str, tuple[int, ...]] = ("discrete", (3,))) -> CorePolicy:
    encoder = MLPEncoder(6, feature_dim=10, hidden=(12,))
    return CorePolicy(encoder, RecurrentStack(kind, 10, TINY), action)


@pytest.mark.parametrize("kind", KINDS)
def test_policy_forward_sequence_equals_acting_steps(kind: CoreKind) -> None:
    policy = _policy(kind, ("multi_discrete", (3, 2)))
    policy.train()  # as PPO calls it
    steps, batch = 9, 4
    obs = torch.randn(steps, batch, 6)
    resets = torch.rand(steps, batch) < 0.2
    actions = torch.randint(0, 2, (steps, batch, 2))
    hidden0 = policy.initial_state(batch)
    hidden, log_probs, values = hidden0, [], []
    for t in range(steps):
        out = policy(obs[t], hidden, reset=resets[t])
        log_probs.append(out.dist.log_prob(actions[t]))
        values.append(out.values["ext"])
        hidden = policy.fold_action(out.hidden, actions[t], None)
    seq = policy.forward_sequence(obs, hidden0, resets.float(), actions, None)
    torch.testing.assert_close(seq.dist.log_prob(actions.flatten(0, 1)), torch.cat(log_probs))
    torch.testing.assert_close(seq.values["ext"], torch.cat(values))
    torch.testing.assert_close(seq.hidden, hidden)
    assert policy.is_recurrent and policy.hidden_dim == policy.core.state_dim


def test_policy_needs_an_encoder_that_fits_the_core() -> None:
    with pytest.raises(ValueError, match="feature_dim"):
        CorePolicy(
            MLPEncoder(6, feature_dim=7), RecurrentStack("qlstm", 10, TINY), ("discrete", (2,))
        )


def test_options_take_the_preset_and_override_it() -> None:
    assert CoreOptions().sizes("qlstm") == CoreSizes()
    reference = CoreOptions(preset="reference", dropout=0.0).sizes("qgru")
    assert (reference.depth, reference.width, reference.dropout) == (8, 1024, 0.0)
    ttt = TTTOptions(preset="reference", depth=8, base_lr=(0.01, 0.1)).sizes("ttt")
    assert (ttt.depth, ttt.heads, ttt.chunk, ttt.base_lr) == (8, 32, 64, (0.01, 0.1))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (lambda: CoreOptions(depth=0), "depth"),
        (lambda: CoreOptions(width=-1), "width"),
        (lambda: CoreOptions(dropout=1.0), "dropout"),
        (lambda: TTTOptions(chunk=0), "chunk"),
        (lambda: TTTOptions(base_lr=(0.5, 0.1)), "base_lr"),
    ],
)
def test_options_reject_invalid_sizes(options: object, field: str) -> None:
    with pytest.raises(ValueError, match=field if field != "base_lr" else "low <= high"):
        options()  # type: ignore[operator]


def _build(plugin: QLSTMPlugin | QGRUPlugin | TTTPlugin, options: CoreOptions) -> torch.nn.Module:
    spec = ObservationSpec(shape=(6,), dtype="float32", kind="vector")
    action = ActionSpec(kind="discrete", nvec=(4,))
    encoder = MLPEncoder(6, feature_dim=16)
    context = BuildContext(experiment_name="t", seed=0)
    return plugin.build(options, context, spec, action, {"encoder": encoder})


@pytest.mark.parametrize(
    ("plugin", "options"),
    [
        (QLSTMPlugin(), CoreOptions(depth=1, width=16)),
        (QGRUPlugin(), CoreOptions(depth=1)),
        (TTTPlugin(), TTTOptions(depth=1, width=16, heads=4)),
    ],
)
def test_plugins_build_a_core_policy(
    plugin: QLSTMPlugin | QGRUPlugin | TTTPlugin, options: CoreOptions
) -> None:
    policy = _build(plugin, options)
    assert isinstance(policy, CorePolicy)
    assert policy.core.kind == plugin.name
    out = policy(torch.randn(2, 6), policy.initial_state(2))
    assert out.dist.sample().shape == (2,)
    assert out.hidden.shape == (2, policy.hidden_dim)


def test_ttt_plugin_names_heads_that_do_not_divide_the_width() -> None:
    with pytest.raises(PluginError, match="divisible by heads"):
        _build(TTTPlugin(), TTTOptions(width=18, heads=4))


def test_option_classes_import_without_torch() -> None:
    code = "import sys, pamiqx.builtin.cores, pamiqx.api.cores; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
