"""Tests of ``ttt-e2e``'s reference encoder: raw patches -> transformer decoder -> TTT layers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pamiqx_fd_curiosity.patch_encoder import PatchTransformer
from pamiqx_fd_curiosity.plugin import TTTE2EOptions, TTTE2EPlugin
from pamiqx_fd_curiosity.unified import UnifiedNetwork

from pamiqx.api import ActionSpec, BuildContext, ObservationSpec, PluginError
from pamiqx.testing import ContractSetup, check_curiosity_contract

IMAGES = ObservationSpec((16, 16, 3), "uint8", "image")
MULTI = ActionSpec("multi_discrete", (3, 3, 2))
PATCH: dict[str, Any] = {
    "encoder": "patch-transformer",
    "patch_size": 4,
    "encoder_width": 16,
    "encoder_layers": 2,
    "encoder_heads": 2,
    "encoder_ff_dim": 32,
    "encoder_queries": 3,
    "latent_dim": 16,
    "core": "ttt",
    "hidden_dim": 16,
    "ttt_depth": 2,
    "ttt_heads": 2,
    "ttt_chunk": 4,
    "internal_dim": 4,
}


def _encoder() -> PatchTransformer:
    torch.manual_seed(0)
    return PatchTransformer(
        (4, 6, 3), patch_size=2, width=8, layers=2, heads=2, ff_dim=16, queries=2
    )


def test_patches_are_the_standardised_frame_cut_row_major() -> None:
    """Patch (i, j) holds pixels [2i:2i+2, 2j:2j+2, :] of the standardised frame (row-major)."""
    frame = torch.arange(4 * 6 * 3, dtype=torch.float32).reshape(1, 4, 6, 3)
    patches = _encoder().patchify(frame)
    assert patches.shape == (1, 2 * 3, 2 * 2 * 3)
    values = [float(v) for v in range(72)]
    mean = sum(values) / 72
    std = (sum((v - mean) ** 2 for v in values) / 71) ** 0.5  # unbiased
    # Patch (1, 2) is the 6th; its first row holds pixels (2, 4) and (2, 5), then row 3.
    first = [((2 * 6 + 4) * 3 + c - mean) / (std + 1e-8) for c in range(3)]
    assert patches[0, 5, :3].tolist() == pytest.approx(first)
    last = [((3 * 6 + 5) * 3 + c - mean) / (std + 1e-8) for c in range(3)]
    assert patches[0, 5, -3:].tolist() == pytest.approx(last)


def test_the_features_read_every_patch() -> None:
    """The first query's output changes with any one patch (cross-attention over all of them)."""
    encoder = _encoder()
    frame = torch.rand(1, 4, 6, 3)
    base = encoder(frame)
    assert base.shape == (1, 8)
    for row, col in [(0, 0), (3, 5), (1, 3)]:
        changed = frame.clone()
        changed[0, row, col] += 1.0
        assert not torch.allclose(encoder(changed), base)


def test_frames_must_split_into_whole_patches() -> None:
    with pytest.raises(PluginError, match="multiples of patch_size"):
        PatchTransformer((10, 12, 3), patch_size=4, width=8, layers=1, heads=2, ff_dim=8, queries=1)


# About a minute on a 2-core CPU: in `make test-all`; the default suite runs the
# ttt-e2e contract on the small core (test_unified.py) and the patch transformer's
# own tests here.
@pytest.mark.slow
def test_contract_ttt_e2e_patch_transformer() -> None:
    """Every check, with the reference structure; novelty on the excitatory surprisal."""

    def excitatory(curiosity: Any, batch: Any) -> torch.Tensor:
        network: UnifiedNetwork = curiosity.unified
        out = []
        hidden = network.initial_state(batch.shape[1])
        with torch.no_grad():
            for t in range(batch.shape[0]):
                parts = network._begin(hidden, None)
                x = network._inputs(network._encode(batch.next_observations[t]), parts)
                out.append(network.excitatory_reward(network.core.step(x, parts["core"], None)[2]))
                step = network(batch.observations[t], hidden)
                hidden = network.fold_action(step.hidden, batch.actions[t], None)
        return torch.stack(out)

    options = TTTE2EOptions(**PATCH, prediction_delay=2)
    check_curiosity_contract(
        ContractSetup(TTTE2EPlugin, options, observation_spec=IMAGES), excitatory
    )


def test_the_encoder_trains_end_to_end() -> None:
    """PPO's and the prediction's gradients reach the patch embedding through the TTT layers."""
    torch.manual_seed(0)
    curiosity = TTTE2EPlugin().build(TTTE2EOptions(**PATCH), BuildContext("t", 0), IMAGES, MULTI)
    network: UnifiedNetwork = curiosity.unified
    obs = torch.randint(0, 256, (6, 2, 16, 16, 3), dtype=torch.uint8)
    actions = torch.zeros(6, 2, 3, dtype=torch.long)
    seq = network.forward_sequence(obs, network.initial_state(2), None, actions, None)
    assert seq.aux_loss is not None
    seq.aux_loss.backward()
    embed = network.encoder.trunk.embed.weight  # type: ignore[union-attr]
    assert embed.grad is not None and float(embed.grad.abs().sum()) > 0
