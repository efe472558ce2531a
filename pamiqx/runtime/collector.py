"""The one collection loop body: act → record → (the world moves) → complete → hand over.

Lock-step runs, the real-time agent, the benchmarks and :mod:`pamiqx.testing`
all collect through :class:`Collector`; only who moves the world differs. The
online-reward bookkeeping lives here and nowhere else: an online curiosity
scores the transition that produced an observation when the agent next acts on
it, and the rollout's last transition is scored at bootstrap time, so the next
:meth:`Collector.act` on those same observations must not score it again.

Observations are encoded here too, once each: the run's representation
(:class:`pamiqx.runtime.stage.Stage`) turns what a world observes into the latents
the agent, the curiosity and the rollout hold. :meth:`Collector.complete` encodes
``o_{t+1}``, and the :meth:`Collector.act` that follows on the same observations
reuses those latents (also across a checkpoint, since the representation may have
trained in between).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pamiqx.learner.batch import RolloutBatch
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.rollout import Rollout
from pamiqx.runtime.stage import Stage


class Collector:
    """Turns observations into actions, and full rollouts into batches for training.

    One step is ``act(o_t)`` (the world then applies the actions), followed by
    ``complete(o_{t+1}, r_t, starts_{t+1})``, which returns the finished rollout
    as a batch when it is full; a fresh rollout starts at once, so the batch can
    be trained on in another thread while collection goes on.
    """

    def __init__(
        self,
        agent: PolicyAgent,
        make_rollout: Callable[[], Rollout],
        device: torch.device,
        stage: Stage | None = None,
    ) -> None:
        """Create a collector with an empty rollout.

        Args:
            agent: Acts for every world and keeps the recurrent state.
            make_rollout: Allocates an empty rollout (sized for the stage's latents).
            device: Where finished rollouts are handed over (the training device).
            stage: The run's representation; None keeps observations as they are.
        """
        self.agent = agent
        self.make_rollout = make_rollout
        self.device = device
        self.stage = stage
        self.rollout = make_rollout()
        # The observations the next act() is expected on, and their latents.
        self._current: tuple[npt.NDArray[Any], torch.Tensor] | None = None
        self.online = agent.curiosity.style == "online"
        # True when the current observations' transition was already scored (at bootstrap).
        self._scored_current = False
        self._pending = False

    @property
    def pending(self) -> bool:
        """Whether actions were taken whose outcome :meth:`complete` has not stored yet."""
        return self._pending

    def act(
        self, observations: npt.NDArray[Any], episode_starts: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int64]:
        """Choose actions for ``(E, ...)`` observations and record the step.

        Returns:
            ``(E,)`` or ``(E, K)`` actions for the worlds.
        """
        latents = self._reuse_or_encode(observations)
        self._current = None
        step = self.agent.act(
            latents, episode_starts, score=self.online and not self._scored_current
        )
        if step.online_reward is not None and self.rollout.size > 0:
            self.rollout.set_online_reward(self.rollout.size - 1, step.online_reward)
        self._scored_current = False
        self.rollout.add(step)
        self._pending = True
        return step.actions.numpy()

    def complete(
        self,
        observations: npt.NDArray[Any],
        rewards: npt.NDArray[np.float32],
        episode_starts: npt.NDArray[np.bool_],
    ) -> RolloutBatch | None:
        """Store the outcome of the last actions; hand over the rollout when it is full.

        Args:
            observations: ``(E, ...)`` what the worlds observe after the actions.
            rewards: ``(E,)`` the actions' extrinsic rewards.
            episode_starts: ``(E,)`` which observations start an episode, which also
                means the action just taken ended one.

        Returns:
            The full rollout on the training device, or None while it fills.
        """
        latents = self._encode(observations)
        if self.stage is not None:
            self._current = (np.array(observations, copy=True), latents)
        self.rollout.complete_step(rewards, episode_starts.copy(), latents)
        self._pending = False
        if not self.rollout.full:
            return None
        return self._hand_over(latents, episode_starts)

    def _encode(self, observations: npt.NDArray[Any]) -> torch.Tensor:
        if self.stage is None:
            return torch.from_numpy(np.ascontiguousarray(observations))
        return self.stage.encode(observations)

    def _reuse_or_encode(self, observations: npt.NDArray[Any]) -> torch.Tensor:
        # complete() encoded these observations already (a real-time world observes
        # anew after a resume, so the cached ones are compared, not trusted).
        if self._current is not None and np.array_equal(self._current[0], observations):
            return self._current[1]
        return self._encode(observations)

    def _hand_over(
        self, latents: torch.Tensor, episode_starts: npt.NDArray[np.bool_]
    ) -> RolloutBatch:
        score = self.online and not self._scored_current
        boot = self.agent.bootstrap(latents, episode_starts, score)
        if boot.online_reward is not None:
            self.rollout.set_online_reward(self.rollout.size - 1, boot.online_reward)
        # Offered once, whatever the answer: a stateful mechanism must not see o_T twice.
        self._scored_current = score
        batch = self.rollout.batch(self.device, boot.values, boot.groups)
        self.rollout = self.make_rollout()
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Return the agent's state, the partial rollout, the scoring flag and current latents."""
        current = None
        if self._current is not None:
            current = {"observations": self._current[0].copy(), "latents": self._current[1].clone()}
        return {
            "agent": self.agent.state_dict(),
            "rollout": self.rollout.state_dict(),
            "scored_current": self._scored_current,
            "current": current,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a pending step is not saved: it is taken again)."""
        self.agent.load_state_dict(state["agent"])
        self.rollout.load_state_dict(state["rollout"])
        self._scored_current = bool(state["scored_current"])
        current = state.get("current")
        self._current = None
        if current is not None:
            self._current = (np.asarray(current["observations"]), current["latents"])
        self._pending = False
