"""The host's own plugins, registered through the ``pamiqx`` entry-point group like everyone else's.

:mod:`.environments` (``sim-maze``, ``gymnasium``), :mod:`.models`
(``conv-encoder``, ``mlp-encoder``, ``actor-critic``) and :mod:`.curiosity`
(``none``). They use only :mod:`pamiqx.api`, as any plugin would; the worlds and
networks they build live in :mod:`pamiqx.envs` and :mod:`pamiqx.models`.
"""
