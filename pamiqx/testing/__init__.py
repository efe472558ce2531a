"""What plugin authors use in their tests: contract checks, distribution check, harness.

Example, in a plugin package's tests::

    from pamiqx.testing import ContractSetup, check_curiosity_contract, check_plugin_distribution

    def test_plugins_register():
        check_plugin_distribution("pamiqx-my-curiosity")

    def test_contract():
        check_curiosity_contract(ContractSetup(MyCuriosityPlugin))

A representation plugin runs ``check_representation_contract(RepresentationSetup(MyPlugin))``.
A mechanism's own behaviour under the host's collector and PPO learner is
tested with :class:`TrainingHarness`.
"""

from __future__ import annotations

from pamiqx.testing.contract import (
    ContractSetup,
    ContractWorld,
    check_curiosity_contract,
    check_device,
    check_no_gradient_leak,
    check_novelty,
    check_policy_group_outputs,
    check_reward_shape,
    check_state_round_trip,
    check_update_lowers_loss,
)
from pamiqx.testing.distribution import check_plugin_distribution
from pamiqx.testing.harness import TrainingHarness
from pamiqx.testing.representation_contract import (
    RepresentationSetup,
    check_deterministic_encode,
    check_latent_spec,
    check_representation_contract,
    check_representation_round_trip,
    check_training_lowers_loss,
)

__all__ = [
    "ContractSetup",
    "ContractWorld",
    "RepresentationSetup",
    "TrainingHarness",
    "check_curiosity_contract",
    "check_deterministic_encode",
    "check_device",
    "check_latent_spec",
    "check_no_gradient_leak",
    "check_novelty",
    "check_plugin_distribution",
    "check_policy_group_outputs",
    "check_representation_contract",
    "check_representation_round_trip",
    "check_reward_shape",
    "check_state_round_trip",
    "check_training_lowers_loss",
    "check_update_lowers_loss",
]
