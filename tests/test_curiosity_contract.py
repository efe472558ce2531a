"""The contract checks themselves: they pass a sound mechanism and catch broken ones."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import torch

from pamiqx.api import Curiosity, CuriosityPlugin, Transitions
from pamiqx.builtin.curiosity import NoCuriosityPlugin
from pamiqx.testing import (
    ContractSetup,
    check_curiosity_contract,
    check_no_gradient_leak,
    check_novelty,
    check_reward_shape,
    check_state_round_trip,
    check_update_lowers_loss,
)


@attrs.frozen
class Options:
    lr: float = 1e-2
    leak: bool = False
    forget_state: bool = False
    wrong_shape: bool = False


class TinyRND(Curiosity):
    """Random network distillation in miniature: the mechanism the checks are built around."""

    def __init__(self, options: Options, dim: int) -> None:
        self.options = options
        self.target = torch.nn.Linear(dim, 16)
        self.predictor = torch.nn.Sequential(
            torch.nn.Linear(dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)
        )
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=options.lr)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"target": self.target, "predictor": self.predictor}

    def _error(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float().flatten(2) / 255.0
        return (self.predictor(x) - self.target(x)).pow(2).mean(-1)

    def rewards(self, batch: Transitions) -> torch.Tensor:
        if self.options.leak:
            return self._error(batch.next_observations)
        with torch.no_grad():
            r = self._error(batch.next_observations)
        return r[:, :1] if self.options.wrong_shape else r

    def update(self, batch: Transitions) -> dict[str, float]:
        loss = self._error(batch.next_observations).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        if self.options.forget_state:
            return {"target": self.target.state_dict()}
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        if not self.options.forget_state:
            self.predictor.load_state_dict(state["predictor"])
            self.optimizer.load_state_dict(state["optimizer"])


class TinyRNDPlugin(CuriosityPlugin):
    """Tiny RND for the contract tests."""

    name = "tiny-rnd"
    Options = Options

    def build(
        self, options: Any, context: Any, observation_spec: Any, action_spec: Any
    ) -> Curiosity:
        dim = int(torch.tensor(observation_spec.shape).prod())
        return TinyRND(options, dim)


def test_a_sound_mechanism_passes_every_check() -> None:
    check_curiosity_contract(ContractSetup(TinyRNDPlugin))


def test_novelty_check_reports_its_numbers() -> None:
    familiar, novel = check_novelty(ContractSetup(TinyRNDPlugin))
    assert novel > 2 * familiar


@pytest.mark.parametrize(
    ("options", "check", "message"),
    [
        (Options(leak=True), check_reward_shape, "gradients"),
        (Options(leak=True), check_no_gradient_leak, "differentiably"),
        (Options(wrong_shape=True), check_reward_shape, "shape"),
        (Options(lr=0.0), check_update_lowers_loss, "did not decrease"),
        (Options(forget_state=True), check_state_round_trip, "different rewards"),
    ],
)
def test_broken_mechanisms_are_caught(options: Options, check: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check(ContractSetup(TinyRNDPlugin, options))


def test_a_mechanism_without_curiosity_fails_the_novelty_check() -> None:
    with pytest.raises(AssertionError, match="not more rewarding"):
        check_novelty(ContractSetup(NoCuriosityPlugin))
