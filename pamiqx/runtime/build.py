"""Experiment + plugins -> the pieces of a run: worlds, models, curiosity, collector, learner."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from pamiqx.api.curiosity import Curiosity, CuriosityPlugin
from pamiqx.api.environment import Environment, EnvironmentPlugin
from pamiqx.api.errors import EnvironmentUnavailableError, PamiqxError, PluginError
from pamiqx.api.model import ModelPlugin
from pamiqx.api.plugin import ActionSpec, BuildContext, ObservationSpec
from pamiqx.api.policy import PolicyNetwork
from pamiqx.api.representation import RepresentationPlugin
from pamiqx.experiment import ResolvedExperiment, ResolvedPlugin
from pamiqx.faults import PluginIdentity, blame, summarise
from pamiqx.learner.ppo import PPOLearner
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.memory import check_rollout_memory
from pamiqx.runtime.rollout import Rollout
from pamiqx.runtime.stage import Stage
from pamiqx.runtime.worlds import Worlds


def resolve_device(requested: str) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a device, checking CUDA is there.

    Raises:
        PamiqxError: CUDA was asked for but is not available.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise PamiqxError(
            f"run.device = '{requested}' but CUDA is not available here; use 'auto' or 'cpu'."
        )
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@attrs.define
class Components:
    """Everything a run loop needs, built and on the device.

    Attributes:
        stage: The representation: what the worlds observe becomes what the policy,
            the curiosity and the rollout see.
        who: Each role's plugin (``environment``, ``representation``, ``curiosity``,
            ``models.<role>``, and ``policy``: whoever owns the acting network), for
            fault messages.
    """

    worlds: Worlds
    stage: Stage
    models: dict[str, torch.nn.Module]
    policy: PolicyNetwork
    curiosity: Curiosity
    collector: Collector
    learner: PPOLearner
    device: torch.device
    who: dict[str, PluginIdentity]

    @property
    def envs(self) -> list[Environment]:
        """The worlds' environments."""
        return self.worlds.envs


def _instantiate(resolved: ResolvedPlugin, base: type[Any]) -> Any:
    plugin = resolved.entry.plugin()
    if not isinstance(plugin, base):
        raise PluginError(
            f"plugin '{resolved.entry.qualified_name}' is not a {base.__name__} subclass."
        )
    return plugin


def _build_step(what: str, resolved: ResolvedPlugin, build: Any) -> Any:
    """Call a plugin's build, naming the plugin if it fails with an ordinary exception."""
    try:
        return build()
    except PamiqxError:
        raise
    except Exception as error:
        who = PluginIdentity.of(what, resolved.entry)
        raise PluginError(
            f"{what} plugin {who.label} failed to build: {summarise(error)}"
        ) from error


def build_environments(
    resolved: ResolvedExperiment, device: torch.device, run_dir: Path | None
) -> list[Environment]:
    """Build ``run.num_envs`` copies of the environment (one for real-time worlds)."""
    exp = resolved.experiment
    plugin = _instantiate(resolved.environment, EnvironmentPlugin)
    envs: list[Environment] = []
    for index in range(exp.run.num_envs):
        context = BuildContext(
            exp.name,
            exp.seed,
            str(device),
            run_dir,
            exp.run.time_scale,
            env_index=index,
            num_envs=exp.run.num_envs,
        )
        env = _build_step(
            "environment",
            resolved.environment,
            lambda context=context: plugin.build(resolved.environment.options, context),
        )
        envs.append(env)
        if env.realtime and exp.run.num_envs > 1:
            raise EnvironmentUnavailableError(
                f"environment '{resolved.environment.entry.name}' runs in real time: "
                "run.num_envs must be 1."
            )
        if index == 0:
            _check_memory_early(resolved, env)
    return envs


def _check_memory_early(resolved: ResolvedExperiment, env: Environment) -> None:
    """Refuse a rollout that cannot fit before ``run.num_envs`` worlds are built.

    A lower bound (the policy's state widths are not known yet); a world whose specs
    are only known after ``setup()`` is checked by :func:`build_components` instead.
    """
    try:
        specs = env.observation_spec, env.action_spec
    except Exception:  # noqa: BLE001 - named by build_components, after setup()
        return
    exp = resolved.experiment
    device = resolve_device(exp.run.device)
    check_rollout_memory(exp.policy.rollout_steps, exp.run.num_envs, *specs, device)


@attrs.frozen
class Networks:
    """What acting needs of an experiment: the representation, the models and the policy.

    Attributes:
        stage: The representation.
        models: The ``[models]`` networks (and ``policy``, whoever owns it), on the device.
        policy: The acting network.
        curiosity: The curiosity (it may own the policy).
        device: Where they run.
        who: Each role's plugin, for fault messages.
    """

    stage: Stage
    models: dict[str, torch.nn.Module]
    policy: PolicyNetwork
    curiosity: Curiosity
    device: torch.device
    who: dict[str, PluginIdentity]


def build_networks(
    resolved: ResolvedExperiment, envs: list[Environment], run_dir: Path | None
) -> Networks:
    """Build the representation, models, curiosity and policy for already-built worlds.

    The acting process of a CUDA run (spawned, so it inherits nothing) builds its
    copies with this too; they are built in the same order from the same seed.

    Args:
        resolved: The validated experiment.
        envs: The worlds (their specs size the models).
        run_dir: The run directory.

    Returns:
        The networks, on the experiment's device.
    """
    exp = resolved.experiment
    device = resolve_device(exp.run.device)
    seed_everything(exp.seed)
    context = BuildContext(
        exp.name, exp.seed, str(device), run_dir, exp.run.time_scale, num_envs=len(envs)
    )
    who = identities(resolved)
    with blame(who["environment"], "observation_spec/action_spec"):
        raw_spec, action_spec = envs[0].observation_spec, envs[0].action_spec
    stage = build_stage(resolved, context, raw_spec, device, who["representation"])
    # Models, curiosity and rollout are built for the representation's latents.
    obs_spec = stage.spec
    models: dict[str, torch.nn.Module] = {}
    for role, model in resolved.models.items():
        plugin = _instantiate(model, ModelPlugin)
        built = _build_step(
            f"models.{role}",
            model,
            lambda plugin=plugin, model=model: plugin.build(
                model.options, context, obs_spec, action_spec, dict(models)
            ),
        )
        if not isinstance(built, torch.nn.Module):
            raise PluginError(
                f"[models.{role}] plugin {PluginIdentity.of(role, model.entry).label} built a "
                f"{type(built).__name__}, not a torch.nn.Module."
            )
        models[role] = built.to(device)
    curiosity_plugin = _instantiate(resolved.curiosity, CuriosityPlugin)
    curiosity: Curiosity = _build_step(
        "curiosity",
        resolved.curiosity,
        lambda: curiosity_plugin.build(resolved.curiosity.options, context, obs_spec, action_spec),
    )
    owned = _build_step("curiosity", resolved.curiosity, lambda: curiosity.policy_network(models))
    if owned is not None:
        # The mechanism acts through its own network; [models.policy] goes unused.
        if not isinstance(owned, PolicyNetwork):
            raise PluginError(
                f"curiosity plugin '{resolved.curiosity.entry.name}' returned a policy network "
                "that is not a pamiqx.api.PolicyNetwork."
            )
        models["policy"] = owned.to(device)
        who["policy"] = who["curiosity"]
    policy = models["policy"]
    if not isinstance(policy, PolicyNetwork):
        raise PluginError(
            f"[models.policy] plugin '{resolved.models['policy'].entry.name}' must build a "
            "pamiqx.api.PolicyNetwork (the PPO learner drives it)."
        )
    return Networks(stage, models, policy, curiosity, device, who)


def build_components(
    resolved: ResolvedExperiment, envs: list[Environment], run_dir: Path | None
) -> Components:
    """Build models, curiosity, agent and learner for already-built worlds.

    Args:
        resolved: The validated experiment.
        envs: The worlds (their specs size the models).
        run_dir: The run directory.

    Returns:
        The components, on the experiment's device.
    """
    exp = resolved.experiment
    nets = build_networks(resolved, envs, run_dir)
    policy, device, who, stage = nets.policy, nets.device, nets.who, nets.stage
    obs_spec, action_spec = stage.spec, envs[0].action_spec
    check_rollout_memory(
        exp.policy.rollout_steps,
        len(envs),
        obs_spec,
        action_spec,
        device,
        policy.hidden_dim,
        policy.internal_action_dim,
    )
    agent = PolicyAgent(policy, nets.curiosity, len(envs), device, exp.run.precision, who)
    collector = Collector(
        agent,
        lambda: new_rollout(resolved, len(envs), obs_spec, action_spec, policy),
        device,
        stage,
    )
    learner = PPOLearner(
        policy,
        exp.policy,
        device,
        exp.run.precision,
        generator=torch.Generator().manual_seed(exp.seed),
        who=who["policy"],
    )
    worlds = Worlds(envs, who["environment"])
    return Components(
        worlds, stage, nets.models, policy, nets.curiosity, collector, learner, device, who
    )


def build_stage(
    resolved: ResolvedExperiment,
    context: BuildContext,
    raw_spec: ObservationSpec,
    device: torch.device,
    who: PluginIdentity,
) -> Stage:
    """Build the experiment's representation for the worlds' raw observations, on ``device``."""
    plugin = _instantiate(resolved.representation, RepresentationPlugin)
    representation = _build_step(
        "representation",
        resolved.representation,
        lambda: plugin.build(resolved.representation.options, context, raw_spec),
    )
    stage = Stage(representation, device, who)
    for module in stage.modules().values():
        module.to(device)
    return stage


def identities(resolved: ResolvedExperiment) -> dict[str, PluginIdentity]:
    """Return each role's plugin; ``policy`` is ``[models.policy]`` until a curiosity owns it."""
    who = {
        "environment": PluginIdentity.of("environment", resolved.environment.entry),
        "representation": PluginIdentity.of("representation", resolved.representation.entry),
        "curiosity": PluginIdentity.of("curiosity", resolved.curiosity.entry),
    }
    for role, model in resolved.models.items():
        who[f"models.{role}"] = PluginIdentity.of(f"models.{role}", model.entry)
    who["policy"] = who.get("models.policy", who["curiosity"])
    return who


def new_rollout(
    resolved: ResolvedExperiment,
    num_envs: int,
    observation_spec: ObservationSpec,
    action_spec: ActionSpec,
    policy: PolicyNetwork,
) -> Rollout:
    """Allocate the rollout storage for the experiment, the worlds' latents and the policy."""
    return Rollout(
        resolved.experiment.policy.rollout_steps,
        num_envs,
        observation_spec,
        action_spec,
        policy.hidden_dim,
        policy.internal_action_dim,
    )
