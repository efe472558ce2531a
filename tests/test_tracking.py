"""Tracking metrics in Aim: read-back, resume, skipped values, errors, clean exit."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pamiqx.api.errors import PamiqxError
from pamiqx.experiment import TrackingConfig
from pamiqx.tracking import (
    AimTracker,
    NullTracker,
    open_tracker,
    prepare_repository,
    read_metrics,
    read_params,
)

# Tracking writes deprecation warnings of aim's SQLAlchemy use (hidden outside tests).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*declarative_base:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning"),
]


@pytest.fixture(scope="session")
def empty_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty Aim repository (initialising one takes aim seconds)."""
    from aim.sdk.repo import Repo

    path = tmp_path_factory.mktemp("template") / "aim"
    Repo.from_path(str(path), init=True).close()
    return path


@pytest.fixture
def log_dir(tmp_path: Path, empty_repo: Path) -> Path:
    """A log folder whose ``aim`` repository is a copy of the empty one."""
    shutil.copytree(empty_repo, tmp_path / "aim")
    return tmp_path


def _open(
    log_dir: Path, run_hash: str | None = None, config: TrackingConfig | None = None
) -> AimTracker:
    tracker = open_tracker(
        config or TrackingConfig(),
        experiment_name="quickstart",
        log_dir=log_dir,
        hparams={"policy": {"lr": 3e-4, "epochs": 4}, "seed": 1, "path": Path("/x")},
        run_hash=run_hash,
    )
    assert isinstance(tracker, AimTracker)
    return tracker


def test_metrics_read_back_in_step_order(log_dir: Path) -> None:
    tracker = _open(log_dir)
    for step in range(0, 500, 100):
        tracker.track({"loss/policy": step / 100, "coverage": step / 1000}, step=step)
    # A step tracked late still reads back in step order.
    tracker.track({"loss/policy": 9.0}, step=50)
    run_hash = tracker.run_hash
    tracker.close()
    tracker.close()  # idempotent

    runs = read_metrics(log_dir / "aim")
    assert list(runs) == [run_hash]
    assert runs[run_hash]["loss/policy"] == [
        (0, 0.0),
        (50, 9.0),
        (100, 1.0),
        (200, 2.0),
        (300, 3.0),
        (400, 4.0),
    ]
    assert runs[run_hash]["coverage"] == [(s, s / 1000) for s in range(0, 500, 100)]


def test_params_and_experiment_stored(log_dir: Path) -> None:
    tracker = _open(log_dir)
    tracker.log_params({"note": "late"})
    tracker.track({"x": 1.0}, step=1)
    run_hash = tracker.run_hash
    assert run_hash is not None
    tracker.close()

    params = read_params(log_dir / "aim", run_hash)
    assert params == {
        "policy": {"lr": 3e-4, "epochs": 4},
        "seed": 1,
        "path": "/x",  # not a plain value: stored as text
        "note": "late",
    }
    assert list(read_metrics(log_dir / "aim", experiment="quickstart")) == [run_hash]
    assert read_metrics(log_dir / "aim", experiment="other") == {}


def test_config_names_repo_and_experiment(tmp_path: Path) -> None:
    repo = tmp_path / "elsewhere"
    tracker = _open(tmp_path, config=TrackingConfig(repo=str(repo), experiment="renamed"))
    tracker.track({"x": 1.0}, step=1)
    assert tracker.repo == repo.absolute()
    tracker.close()
    assert not (tmp_path / "aim").exists()
    assert list(read_metrics(repo, experiment="renamed")) == [tracker.run_hash]


def test_resume_appends_to_the_same_run(log_dir: Path) -> None:
    first = _open(log_dir)
    for step in range(5):
        first.track({"reward/intrinsic": float(step)}, step=step)
    run_hash = first.run_hash
    first.close()

    second = _open(log_dir, run_hash=run_hash)
    assert second.resumed
    assert second.run_hash == run_hash
    for step in range(5, 10):
        second.track({"reward/intrinsic": float(step)}, step=step)
    second.close()

    runs = read_metrics(log_dir / "aim")
    assert list(runs) == [run_hash]
    assert runs[run_hash]["reward/intrinsic"] == [(s, float(s)) for s in range(10)]


def test_resume_of_a_missing_run_starts_a_new_one(log_dir: Path) -> None:
    tracker = _open(log_dir, run_hash="0123456789abcdef01234567")
    assert not tracker.resumed
    assert tracker.run_hash != "0123456789abcdef01234567"
    tracker.close()


def test_run_open_twice_in_one_process_is_an_error(log_dir: Path) -> None:
    tracker = _open(log_dir)
    with pytest.raises(PamiqxError, match="already open"):
        _open(log_dir, run_hash=tracker.run_hash)
    tracker.close()


def test_non_finite_values_are_skipped(log_dir: Path) -> None:
    tracker = _open(log_dir)
    tracker.track({"a": 1.0, "b": math.nan}, step=1)
    tracker.track({"a": math.inf, "b": 2.0}, step=2)
    tracker.track({"a": -math.inf}, step=3)
    run_hash = tracker.run_hash
    tracker.close()

    series = read_metrics(log_dir / "aim")[run_hash]
    assert series == {"a": [(1, 1.0)], "b": [(2, 2.0)]}


def test_disabled_tracking_creates_nothing(tmp_path: Path) -> None:
    tracker = open_tracker(TrackingConfig(enabled=False), "quickstart", tmp_path, {"seed": 1})
    assert isinstance(tracker, NullTracker)
    assert tracker.run_hash is None
    tracker.log_params({"a": 1})
    tracker.track({"a": 1.0}, step=1)
    tracker.close()
    tracker.close()
    assert list(tmp_path.iterdir()) == []


def test_corrupt_repository_is_a_user_error(tmp_path: Path) -> None:
    repo = tmp_path / "aim"
    (repo / ".aim").mkdir(parents=True)
    (repo / ".aim" / "VERSION").write_text("not a version\n")
    with pytest.raises(PamiqxError, match=str(repo)):
        _open(tmp_path)


def test_repository_path_that_is_a_file_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "aim").write_text("")
    with pytest.raises(PamiqxError, match="Cannot open the Aim repository"):
        _open(tmp_path)


def test_a_repository_prepared_in_the_background_takes_the_run(tmp_path: Path) -> None:
    prepare_repository(TrackingConfig(), tmp_path)
    prepare_repository(TrackingConfig(), tmp_path)  # once per repository
    tracker = _open(tmp_path)  # waits for the preparation
    tracker.track({"coverage": 0.5}, step=3)
    tracker.close()
    assert read_metrics(tmp_path / "aim")[tracker.run_hash]["coverage"] == [(3, 0.5)]


def test_a_failed_preparation_is_reported_by_the_open(tmp_path: Path) -> None:
    (tmp_path / "aim").write_text("")
    prepare_repository(TrackingConfig(), tmp_path)  # fails quietly on its thread
    with pytest.raises(PamiqxError, match="Cannot open the Aim repository"):
        _open(tmp_path)


def test_disabled_tracking_prepares_nothing(tmp_path: Path) -> None:
    prepare_repository(TrackingConfig(enabled=False), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reading_a_missing_repository_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(PamiqxError, match="No Aim repository"):
        read_metrics(tmp_path / "nothing")


def test_process_exit_prints_no_aim_cleanup_noise(log_dir: Path) -> None:
    # One run closed, one left open: both must end quietly, the open one finished by
    # the exit hook (its lock released, its values kept).
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from pamiqx.tracking import AimTracker

        repo = Path({str(log_dir / "aim")!r})
        closed = AimTracker(repo, "exit-test", {{"a": 1}})
        closed.track({{"x": 1.0}}, step=1)
        closed.close()
        left_open = AimTracker(repo, "exit-test", {{"a": 2}})
        left_open.track({{"x": 2.0}}, step=2)
        print(left_open.run_hash)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert "AutoClean" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr

    left_open = result.stdout.strip()
    assert not (log_dir / "aim" / ".aim" / "locks" / f"{left_open}.softlock").exists()
    runs = read_metrics(log_dir / "aim")
    assert len(runs) == 2
    assert runs[left_open] == {"x": [(2, 2.0)]}


def test_importing_does_not_import_aim_or_torch() -> None:
    script = (
        "import sys\n"
        "import pamiqx.tracking, pamiqx.display\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('aim', 'torch'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_two_processes_creating_one_repository_both_succeed(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pamiqx.experiment import TrackingConfig\n"
        "from pamiqx.tracking import open_tracker\n"
        "t = open_tracker(TrackingConfig(), sys.argv[1], Path(sys.argv[2]), {})\n"
        "t.track({'x': 1.0}, 1)\n"
        "t.close()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, f"e{i}", str(tmp_path)], stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert len(read_metrics(tmp_path / "aim")) == 2


def test_a_run_opened_at_once_after_the_preparation_started_does_not_race_its_imports(
    tmp_path: Path,
) -> None:
    # In a fresh process aim is not imported yet: the preparation imports it on its
    # thread while the run's open would import it on the main thread (a deadlock on
    # aim's circular imports, 3 times in 5 before the open waited).
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pamiqx.experiment import TrackingConfig\n"
        "from pamiqx.tracking import open_tracker, prepare_repository\n"
        "prepare_repository(TrackingConfig(), Path(sys.argv[1]))\n"
        "open_tracker(TrackingConfig(), 'race', Path(sys.argv[1]), {}).close()\n"
    )
    for attempt in range(3):
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / str(attempt))],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
