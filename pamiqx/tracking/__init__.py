"""Metric tracking in an Aim repository.

:func:`open_tracker` turns a :class:`~pamiqx.experiment.TrackingConfig` into a
:class:`Tracker`: a :class:`NullTracker` when tracking is disabled, else an
:class:`AimTracker` writing one Aim run (a resumed training continues its run);
see :mod:`pamiqx.tracking.writer`. :func:`prepare_repository` starts opening the
repository on a background thread, so that a run's build overlaps aim's start-up.
:func:`read_metrics` and :func:`read_params` read the tracked series and
hyper-parameters back (:mod:`pamiqx.tracking.reader`);
:class:`AimRunUnreadable` and :class:`AimRepoUnreadable` say which run or repository
is damaged.

aim is heavy to import (it pulls in numpy, sqlalchemy, rocksdb bindings), so it
is imported inside the functions that need it: importing this package is cheap.
"""

from __future__ import annotations

from pamiqx.tracking.reader import (
    AimRepoUnreadable,
    AimRunUnreadable,
    Metrics,
    read_metrics,
    read_params,
)
from pamiqx.tracking.writer import (
    AimTracker,
    NullTracker,
    Tracker,
    open_tracker,
    prepare_repository,
)

__all__ = [
    "AimRepoUnreadable",
    "AimRunUnreadable",
    "AimTracker",
    "Metrics",
    "NullTracker",
    "Tracker",
    "open_tracker",
    "prepare_repository",
    "read_metrics",
    "read_params",
]
