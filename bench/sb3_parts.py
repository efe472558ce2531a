"""The pieces Stable-Baselines3 needs to run pamiqx's world and network (used by bench.sb3_peer).

Imported only in the SB3 measuring process, so that ``python -m bench`` and the
pamiqx side never import gymnasium or stable-baselines3.

- :class:`PamiqxGymEnv` exposes a built pamiqx :class:`~pamiqx.api.Environment`
  (sim-maze here) as a ``gymnasium.Env`` with the same observation (uint8
  ``H x W x C`` frames) and the same discrete action space. sim-maze is
  non-episodic in pamiqx (one endless episode); the wrapper keeps it so: it
  never terminates and never truncates, and SB3 bootstraps nothing extra.
- :class:`ConvEncoderExtractor` is SB3's features extractor around
  :class:`pamiqx.models.networks.ConvEncoder` itself, so the conv stack is the
  same code, not a copy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from gymnasium import spaces
from pamiqx.models.networks import ConvEncoder
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from pamiqx.api import Environment


class PamiqxGymEnv(gym.Env[npt.NDArray[np.uint8], np.int64]):
    """A pamiqx lock-step environment as a gymnasium environment (discrete actions only)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's own attribute)

    def __init__(self, env: Environment) -> None:
        """Wrap an already-built pamiqx environment."""
        if env.action_spec.kind != "discrete" or env.observation_spec.dtype != "uint8":
            raise ValueError("PamiqxGymEnv wraps worlds with uint8 frames and discrete actions")
        self.env = env
        self.observation_space = spaces.Box(0, 255, env.observation_spec.shape, np.uint8)
        self.action_space = spaces.Discrete(env.action_spec.nvec[0])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
        """Place the agent at the start (pamiqx's ``setup``) and return the first frame."""
        super().reset(seed=seed)
        self.env.setup()
        return self.env.observe().observation, {}

    def step(self, action: Any) -> tuple[npt.NDArray[np.uint8], float, bool, bool, dict[str, Any]]:
        """Act, then observe; the world never ends (no termination, no truncation)."""
        self.env.affect(np.asarray(action, dtype=np.int64))
        step = self.env.observe()
        return step.observation, float(step.reward), False, False, {}


class ConvEncoderExtractor(BaseFeaturesExtractor):
    """SB3 features extractor that is pamiqx's ConvEncoder.

    SB3 transposes image observations to channel-first and scales them to
    ``[0, 1]`` before the extractor sees them (its standard ``CnnPolicy``
    pipeline); the extractor hands ConvEncoder the channel-last view it expects.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        features_dim: int = 256,
        channels: tuple[int, ...] = (32, 64, 64),
    ) -> None:
        """Build ConvEncoder for SB3's channel-first ``(C, H, W)`` observation space."""
        super().__init__(observation_space, features_dim)
        channels_in, height, width = observation_space.shape
        self.encoder = ConvEncoder((height, width, channels_in), features_dim, channels)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Encode ``(B, C, H, W)`` float frames in ``[0, 1]``."""
        features: torch.Tensor = self.encoder(observations.permute(0, 2, 3, 1))
        return features
