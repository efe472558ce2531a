"""Sweep and tune files: parsing, expansion, validation, trial folders; no Ray is started."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from pamiqx.api.search import Choice, IntRange, LogUniform, Uniform, search_space_of
from pamiqx.experiment import load_experiment, parse_override
from pamiqx.plugins.manager import load_plugins
from pamiqx.sweep import SweepError, expand, load_sweep_file, plan, state, validate
from pamiqx.sweep.driver import check_storage, write_plan
from pamiqx.sweep.progress import Progress, plain_output
from pamiqx.sweep.space import variant_space
from pamiqx.sweep.trial import TrialFailed, execute
from pamiqx.sweep.tuned_files import Budget, Tuned, write_outputs
from pamiqx.sweep.values import flatten, override, unflatten

CLI = Callable[..., tuple[int, str]]
ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "experiments" / "sweeps"


def installed_mechanisms() -> list[str]:
    """Every installed curiosity mechanism (the baselines ``none`` and ``random`` aside)."""
    return sorted(set(load_plugins().names("curiosity")) - {"none", "random"})


BASE = """
name = "base"
seed = 3

[run]
max_steps = 64
device = "cpu"

[environment]
plugin = "sim-maze"
size = 32
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "base.toml").write_text(BASE)
    return tmp_path


def write(folder: Path, text: str, name: str = "sweep.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# --- values ------------------------------------------------------------------------------


def test_flatten_puts_plugin_first_and_round_trips() -> None:
    table = {"environment": {"id": "X", "plugin": "gymnasium", "w": ["a", "b"]}, "seed": 1}
    flat = flatten(table)
    assert list(flat) == ["environment.plugin", "environment.id", "environment.w", "seed"]
    assert unflatten(flat) == {
        "environment": {"plugin": "gymnasium", "id": "X", "w": ["a", "b"]},
        "seed": 1,
    }


@pytest.mark.parametrize(
    "value", [1, -2.5, 1e-5, True, "a b", 'q"uote', ["x", 1], {"k": [1, 2]}, float("inf")]
)
def test_override_values_parse_back(value: object) -> None:
    key, parsed = parse_override(override("a.b", value))
    assert key == ["a", "b"] and parsed == value


# --- parsing -----------------------------------------------------------------------------


def test_grid_and_variants_expand_to_their_product(folder: Path) -> None:
    (folder / "other.toml").write_text('extends = "base.toml"\nname = "other"\n')
    path = write(
        folder,
        """
        name = "s"
        experiment = "base.toml"
        [set]
        run.max_steps = 96
        [variants]
        plain = {}
        other = "other.toml"
        quiet = { curiosity.plugin = "none", policy.lr = 1e-4 }
        [grid]
        seed = [0, 1]
        policy.epochs = [1, 2]
        """.replace("\n        ", "\n"),
    )
    sweep = load_sweep_file(path)
    runs = expand(sweep, folder / "st")
    assert len(runs) == 3 * 2 * 2
    assert [r.key for r in runs[:2]] == [
        "plain_seed=0_policy.epochs=1",
        "plain_seed=0_policy.epochs=2",
    ]
    quiet = next(r for r in runs if r.key == "quiet_seed=1_policy.epochs=2")
    resolved = load_experiment(quiet.experiment, quiet.overrides)
    exp = resolved.experiment
    assert (exp.name, exp.seed, exp.run.max_steps, exp.policy.epochs) == ("s-quiet", 1, 96, 2)
    assert exp.policy.lr == 1e-4 and resolved.curiosity.entry.name == "none"
    assert exp.run.log_dir == str(folder / "st" / "runs" / quiet.key)
    assert exp.tracking.repo == str(folder / "st" / "aim")
    other = next(r for r in runs if r.variant == "other")
    assert other.experiment == (folder / "other.toml").resolve()


def test_a_file_axis_names_variants_by_stem(folder: Path) -> None:
    (folder / "b.toml").write_text('extends = "base.toml"\nname = "b"\n')
    sweep = load_sweep_file(
        write(folder, 'name = "s"\n[grid]\nexperiment = ["base.toml", "b.toml"]\nseed = [4]\n')
    )
    assert [(r.key, r.experiment.name) for r in expand(sweep, folder)] == [
        ("base_seed=4", "base.toml"),
        ("b_seed=4", "b.toml"),
    ]


def test_switching_a_plugin_in_set_replaces_its_table(folder: Path) -> None:
    path = write(
        folder,
        'name = "s"\nexperiment = "base.toml"\n'
        '[set.environment]\nid = "CartPole-v1"\nplugin = "gymnasium"\n',
    )
    (run,) = expand(load_sweep_file(path), folder)
    resolved = load_experiment(run.experiment, run.overrides)
    assert resolved.environment.entry.name == "gymnasium"
    assert resolved.environment.options.id == "CartPole-v1"  # not cleared by the switch


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('name = "s"\nexperiment = "base.toml"\ngrdi = {}\n', "grdi", "did you mean 'grid'"),
        ('name = "s"\nexperiment = "nope.toml"\n', "experiment", "does not exist"),
        ('experiment = "base.toml"\n', "name", "missing"),
        ('name = "s"\nexperiment = "base.toml"\n[grid]\nseed = []\n', "grid.seed", "non-empty"),
        ('name = "s"\nexperiment = "base.toml"\n[grid]\nseed = 1\n', "grid.seed", "array"),
        (
            'name = "s"\nexperiment = "base.toml"\n[resources]\ncpus = 0\n',
            "resources.cpus",
            "above 0",
        ),
        ('name = "s"\nexperiment = "base.toml"\n[resources]\ngpu = 1\n', "resources.gpu", "gpus"),
        (
            'name = "s"\nexperiment = "base.toml"\n[set]\nrun.log_dir = "x"\n',
            "set.run.log_dir",
            "sweep sets it",
        ),
        ('name = "s"\n[variants]\na = { seed = 1 }\n', "variants.a", "no base"),
        ('name = "s"\nexperiment = "base.toml"\n[tune]\ntrials = 2\n', "tune", "pamiqx tune"),
    ],
)
def test_malformed_sweep_files_name_the_file_and_key(
    folder: Path, text: str, key: str, words: str
) -> None:
    path = write(folder, text)
    with pytest.raises(SweepError) as caught:
        load_sweep_file(path)
    message = str(caught.value)
    assert str(path) in message and f"key '{key}'" in message and words.lower() in message.lower()


def test_not_toml_is_an_error_naming_the_file(folder: Path) -> None:
    path = write(folder, "name = \n")
    with pytest.raises(SweepError, match=re.escape(f"{path}: not valid TOML")):
        load_sweep_file(path)


# --- validation ----------------------------------------------------------------------------


def test_a_bad_value_in_one_expanded_experiment_names_file_trial_and_key(folder: Path) -> None:
    path = write(folder, 'name = "s"\nexperiment = "base.toml"\n[grid]\npolicy.lr = [1e-4, -1.0]\n')
    sweep = load_sweep_file(path)
    with pytest.raises(SweepError) as caught:
        plan(sweep, folder / "st", load_plugins())
    message = str(caught.value)
    assert str(path) in message and "trial 'policy.lr=-1.0'" in message
    assert "policy.lr" in message and "command-line" not in message
    assert not (folder / "st").exists()  # nothing written before everything is valid


def test_an_unknown_key_in_a_variant_is_reported(folder: Path) -> None:
    sweep = load_sweep_file(
        write(folder, 'name = "s"\nexperiment = "base.toml"\n[variants]\nv = { policy.lrr = 1 }\n')
    )
    with pytest.raises(SweepError, match=r"trial 'v'.*policy\.lrr.*Did you mean 'policy\.lr'"):
        plan(sweep, folder, load_plugins())


def test_the_cli_exits_2_before_ray_starts(cli: CLI, folder: Path) -> None:
    path = write(folder, 'name = "s"\nexperiment = "base.toml"\n[grid]\nrun.max_steps = [0]\n')
    code, out = cli("sweep", str(path), "--storage", str(folder / "st"))
    assert code == 2, out
    assert "error:" in out and "run.max_steps" in out and "Traceback" not in out
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


def test_realtime_runs_ask_for_the_realtime_resource(folder: Path) -> None:
    sweep = load_sweep_file(
        write(
            folder,
            'name = "s"\nexperiment = "base.toml"\n[grid]\nrun.mode = ["realtime", "lockstep"]\n',
        )
    )
    trials = plan(sweep, folder, load_plugins())
    assert [t.realtime for t in trials] == [True, False]
    from pamiqx.sweep.driver import trial_resources
    from pamiqx.sweep.spec import Resources

    request = trial_resources(Resources(cpus=2, gpus=0.5))
    assert request({"trial": trials[0].to_config()}).bundles == [
        {"CPU": 2, "GPU": 0.5, "realtime_world": 1}
    ]
    assert request({"trial": trials[1].to_config()}).bundles == [{"CPU": 2, "GPU": 0.5}]


# --- the shipped sweep files ----------------------------------------------------------------


@pytest.mark.parametrize("world", ["maze", "minigrid"])
def test_comparison_sweeps_cover_every_mechanism_and_baseline_over_5_seeds(world: str) -> None:
    sweep = load_sweep_file(SWEEPS / f"compare-{world}.toml")
    names = sorted(v.name for v in sweep.variants)
    mechanisms = installed_mechanisms()
    assert names == sorted({*mechanisms, "none", "random"})
    assert sweep.grid == (("seed", (0, 1, 2, 3, 4)),)
    runs = expand(sweep, Path("/tmp/st"))
    assert len(runs) == len(names) * 5
    manager = load_plugins()
    installed = set(manager.names("curiosity"))
    checked = [r for r in runs if r.variant in installed or r.variant in mechanisms]
    trials = validate(sweep, checked, manager)
    assert {t.max_steps for t in trials} == {12_288}
    for trial in trials:
        assert trial.curiosity == trial.variant and trial.name == f"compare-{world}-{trial.variant}"
    if world == "minigrid":
        resolved = load_experiment(Path(trials[0].experiment), trials[0].overrides, manager)
        assert resolved.environment.options.id == "MiniGrid-FourRooms-v0"
        assert resolved.experiment.policy.ext_coef == 0.0


def test_the_reference_path_comparison_covers_every_reference_file_and_none() -> None:
    sweep = load_sweep_file(SWEEPS / "compare-reference-maze.toml")
    reference = ROOT / "experiments" / "reference"
    # Each reference experiment with a -maze variant (overlays have no full-size file).
    mazes = {p.name.removesuffix("-maze.toml") for p in reference.glob("*-maze.toml")}
    files = {m for m in mazes if (reference / f"{m}.toml").exists()} | {"none"}
    assert sorted(v.name for v in sweep.variants) == sorted(files)
    assert sweep.grid == (("seed", (0, 1, 2)),)
    trials = validate(sweep, expand(sweep, Path("/tmp/st")), load_plugins())
    assert len(trials) == 3 * len(files)
    assert {t.max_steps for t in trials} == {4_096}
    for trial in trials:
        assert trial.curiosity == trial.variant


def test_the_shipped_tune_file_parses_and_its_space_validates() -> None:
    sweep = load_sweep_file(SWEEPS / "tune-maze.toml", tune=True)
    assert sweep.tune is not None and sweep.tune.trials == 8
    run = expand(sweep, Path("/tmp/st"))[0]
    space = variant_space(
        sweep.path, run.experiment, run.overrides, sweep.tune.space, True, load_plugins()
    )
    assert set(space) >= {"policy.lr", "policy.entropy_coef"}


# --- search spaces -------------------------------------------------------------------------


def test_search_domains_check_their_bounds() -> None:
    with pytest.raises(ValueError, match="0 < low"):
        LogUniform(0.0, 1.0)
    with pytest.raises(ValueError, match="below"):
        Uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="integers"):
        IntRange(1, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two values"):
        Choice(1)
    assert Choice(1, "a").bounds() == [1, "a"] and IntRange(1, 3).describe() == "int(1, 3)"


def test_a_declared_search_space_must_name_options() -> None:
    from typing import ClassVar

    @attrs.frozen
    class Options:
        search_space: ClassVar[dict[str, object]] = {"lr": LogUniform(1e-5, 1e-3)}
        lr: float = 1e-4

    assert search_space_of(Options) == {"lr": LogUniform(1e-5, 1e-3)}

    @attrs.frozen
    class Wrong:
        search_space: ClassVar[dict[str, object]] = {"rate": Uniform(0, 1)}
        lr: float = 1e-4

    with pytest.raises(TypeError, match="'rate', which is not an option"):
        search_space_of(Wrong)


def test_a_tune_space_outside_the_options_range_is_refused(folder: Path) -> None:
    path = write(
        folder,
        'name = "t"\nexperiment = "base.toml"\n[tune]\ntrials = 2\n'
        "[tune.space]\npolicy.gamma_ext = { uniform = [0.9, 1.5] }\n",
    )
    sweep = load_sweep_file(path, tune=True)
    assert sweep.tune is not None
    run = expand(sweep, folder)[0]
    with pytest.raises(SweepError, match=r"tune\.space\.policy\.gamma_ext.*includes 1\.5"):
        variant_space(path, run.experiment, run.overrides, sweep.tune.space, True, load_plugins())


@pytest.mark.parametrize(
    ("space", "key", "words"),
    [
        ("policy.lr = { logunifrom = [1, 2] }", "tune.space.policy.lr.logunifrom", "loguniform"),
        ("policy.lr = { uniform = [2, 1] }", "tune.space.policy.lr.uniform", "below"),
        ("curiosity.plugin = { choice = ['a', 'b'] }", "tune.space.curiosity.plugin", "cannot"),
    ],
)
def test_malformed_tune_spaces_name_the_key(folder: Path, space: str, key: str, words: str) -> None:
    path = write(folder, f'name = "t"\nexperiment = "base.toml"\n[tune.space]\n{space}\n')
    with pytest.raises(SweepError) as caught:
        load_sweep_file(path, tune=True)
    assert f"key '{key}'" in str(caught.value) and words in str(caught.value)


def test_tuned_files_extend_the_variant_and_validate(folder: Path) -> None:
    path = write(
        folder,
        'name = "t"\nexperiment = "base.toml"\n'
        '[variants]\nq = { curiosity.plugin = "none" }\n[tune]\n',
    )
    sweep = load_sweep_file(path, tune=True)
    budget = Budget(4, 64, (100,), 16, 3, "random", "coverage")
    outcome = Tuned(
        "q",
        folder / "base.toml",
        {"curiosity.plugin": "none"},
        {"policy.lr": "x"},
        {"policy.lr": 2e-4},
        0.5,
        3,
    )
    written = write_outputs(sweep, [outcome], budget, (0, 1), folder / "out")
    tuned = load_experiment(written[0])
    assert tuned.experiment.policy.lr == 2e-4 and tuned.curiosity.entry.name == "none"
    assert "4 trials per variant" in written[0].read_text()
    evaluation = load_sweep_file(written[1])
    assert evaluation.grid == (("seed", (0, 1)),)
    assert [v.experiment for v in evaluation.variants] == [written[0].resolve()]
    assert "| q |" in written[2].read_text()


# --- trial folders, resume, storage ---------------------------------------------------------


def test_finished_runs_are_skipped_and_unresumable_ones_removed(tmp_path: Path) -> None:
    root = tmp_path / "trial"
    done = root / "exp" / "20260101-000000"
    (done / "checkpoints" / "step-000000000064").mkdir(parents=True)
    (done / "checkpoints" / "step-000000000064" / "meta.json").write_text("{}")
    events = [{"event": "start", "step": 0}, {"event": "end", "step": 64, "status": "finished"}]
    (done / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    state.write_result(root, {"step": 64, "coverage": 0.25})
    reported: list[dict[str, object]] = []
    outcome = execute("unused.toml", [], root, "exp", 64, reported.append)
    assert outcome.skipped and reported == [{"step": 64, "coverage": 0.25}]
    assert state.finished_run(root, "exp", 128) is None  # a longer run is not finished
    lost = root / "exp" / "20260101-000001"
    lost.mkdir()
    (lost / "events.jsonl").write_text(json.dumps({"event": "start", "step": 0}) + "\n")
    assert state.remove_unresumable(root, "exp") == [lost] and done.exists()


def test_a_run_that_fails_raises_for_a_retry_and_names_its_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[environment]\nplugin = "no-such-world"\n')
    with pytest.raises(TrialFailed, match=r"exited with code 2.*trial\.log"):
        execute(str(bad), [], tmp_path / "t", "bad", 10, lambda m: None)
    assert "no-such-world" in (tmp_path / "t" / "trial.log").read_text()
    assert state.read_attempts(tmp_path / "t")[0]["resumed"] is False


def test_a_storage_folder_is_resumed_only_with_the_same_trials(folder: Path) -> None:
    sweep = load_sweep_file(
        write(folder, 'name = "s"\nexperiment = "base.toml"\n[grid]\nseed = [0, 1]\n')
    )
    trials = plan(sweep, folder / "st", load_plugins())
    assert check_storage(folder / "st", trials, resume=True) is False  # nothing to resume: start
    write_plan(folder / "st", trials)
    with pytest.raises(SweepError, match="holds a sweep already; `--resume`"):
        check_storage(folder / "st", trials, resume=False)
    assert check_storage(folder / "st", trials, resume=True) is True
    with pytest.raises(SweepError, match="other trials"):
        check_storage(folder / "st", trials[:1], resume=True)


def test_progress_summary_names_failed_trials_and_their_logs(folder: Path) -> None:
    from rich.console import Console

    sweep = load_sweep_file(
        write(folder, 'name = "s"\nexperiment = "base.toml"\n[grid]\nseed = [0, 1]\n')
    )
    trials = plan(sweep, folder / "st", load_plugins())
    console = Console(record=True, width=200)
    progress = Progress(trials, console, plain=True)
    progress.started("seed=0")
    progress.result("seed=0", {"step": 64, "rate": 100.0, "coverage": 0.5})
    progress.finished("seed=0")
    progress.retrying("seed=1", "node lost")
    progress.failed("seed=1", "exit 1")
    text = console.export_text()
    assert "[seed=0] finished: step 64/64, 100 steps/s, coverage 0.500" in text
    assert "[seed=1] failed, retrying" in text
    summary = "\n".join(progress.summary_lines())
    assert "1 failed, 1 finished" in summary and "seed=1 failed: exit 1" in summary
    assert str(folder / "st" / "runs" / "seed=1" / "trial.log") in summary
    assert progress.rows["seed=1"].retries == 1


def test_plain_output_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("CI", "true")
    assert plain_output(Tty())
    monkeypatch.setenv("CI", "false")
    assert not plain_output(Tty())
