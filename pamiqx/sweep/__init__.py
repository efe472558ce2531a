"""``pamiqx sweep`` and ``pamiqx tune``: grids of ordinary pamiqx runs on Ray Tune.

A sweep file (:mod:`.spec`) expands into trials (:mod:`.expand`), every one
validated before anything starts; each trial (:mod:`.trial`) is one pamiqx run
in a process of its own (:mod:`.child`), retried from its latest checkpoint
when it fails or its node is lost, and skipped when a resumed sweep finds it
finished (:mod:`.state`). :mod:`.driver` runs them with Ray Tune and
:mod:`.progress` shows them. ``pamiqx tune`` (:mod:`.tune`) searches each
variant's settings with ASHA and writes the best as experiment files.

Importing this package imports neither Ray nor torch; the commands do.
"""

from __future__ import annotations

from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.expand import PlannedRun, TrialSpec, expand, plan, storage_dir, validate
from pamiqx.sweep.run import run_sweep
from pamiqx.sweep.spec import Resources, SweepFile, TuneSettings, Variant, load_sweep_file

__all__ = [
    "PlannedRun",
    "Resources",
    "SweepError",
    "SweepFile",
    "TrialSpec",
    "TuneSettings",
    "Variant",
    "expand",
    "load_sweep_file",
    "plan",
    "run_sweep",
    "storage_dir",
    "validate",
]
