"""The built-in learner: clipped PPO over extrinsic and intrinsic reward streams.

Read in order: :mod:`.options` (the ``[policy]`` table), :mod:`.batch` (what a
training phase gets), :mod:`.advantages` (normalise, GAE, mix), :mod:`.loss`
(the clipped objective), :mod:`.ppo` (epochs, minibatches, windows, optimiser).
"""
