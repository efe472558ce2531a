"""One experiment run: build the plugins, then hand them to the training runtime."""

from __future__ import annotations

from pamiqx.api import BuildContext, EnvironmentPlugin
from pamiqx.errors import PamiqxError
from pamiqx.experiment import ResolvedExperiment


def run_experiment(resolved: ResolvedExperiment, resume: str | None = None) -> int:
    """Build the experiment's environment and report what is missing to train it.

    Args:
        resolved: The validated experiment.
        resume: Checkpoint to resume from (not available yet).

    Returns:
        The process exit code.
    """
    exp = resolved.experiment
    env_plugin = resolved.environment.entry.plugin()
    assert isinstance(env_plugin, EnvironmentPlugin)
    env = env_plugin.build(resolved.environment.options, BuildContext(exp.name, exp.seed))
    env.setup()
    try:
        first = env.observe()
        print(
            f"environment '{resolved.environment.entry.name}' ready: observation "
            f"{first.observation.shape} {first.observation.dtype}, actions {env.action_spec}"
        )
    finally:
        env.teardown()
    raise PamiqxError(
        "the training runtime is not part of this pamiqx version yet; "
        "`pamiqx validate` checks the experiment."
    )
