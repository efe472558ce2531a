"""Experiment files: extends, overrides, the resolved TOML, and bad input."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from pamiqx.experiment import load_experiment, parse_override

CLI = Callable[..., tuple[int, str]]
Write = Callable[..., Path]

BASE = """
name = "base"
seed = 3

[run]
max_steps = 5000
device = "cpu"

[environment]
plugin = "sim-maze"
size = 48
rooms = 4

[policy]
lr = 0.001
"""


def test_extends_merges_tables_and_later_values_win(write_toml: Write) -> None:
    write_toml(BASE, "base.toml")
    child = write_toml(
        """
        extends = "base.toml"
        name = "child"

        [environment]
        size = 32

        [policy]
        epochs = 8
        """
    )
    exp = load_experiment(child)
    assert exp.experiment.name == "child"
    assert exp.experiment.seed == 3
    assert exp.experiment.run.max_steps == 5000
    assert exp.environment.options.size == 32
    assert exp.environment.options.rooms == 4
    assert exp.experiment.policy.lr == 0.001 and exp.experiment.policy.epochs == 8


def test_extends_switching_plugin_replaces_the_table(write_toml: Write) -> None:
    write_toml(BASE, "base.toml")
    child = write_toml(
        """
        extends = "base.toml"
        [environment]
        plugin = "gymnasium"
        id = "CartPole-v1"
        """
    )
    exp = load_experiment(child)
    assert exp.environment.entry.name == "gymnasium"
    assert exp.environment.options.id == "CartPole-v1"


def test_extends_is_relative_to_the_extending_file(write_toml: Write, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_toml(BASE, "sub/base.toml")
    write_toml('extends = "base.toml"\nname = "mid"\n', "sub/mid.toml")
    top = write_toml('extends = "sub/mid.toml"\nname = "top"\n')
    exp = load_experiment(top)
    assert (exp.experiment.name, exp.environment.options.size) == ("top", 48)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("run.max_steps=123", 123),
        ("policy.lr=1e-5", 1e-5),
        ("environment.action_mode=multi_discrete", "multi_discrete"),
        ('description="two words"', "two words"),
        ("models.encoder.channels=[8, 16, 16]", (8, 16, 16)),
        ("tracking.enabled=false", False),
    ],
)
def test_overrides_are_toml_values(write_toml: Write, override: str, expected: object) -> None:
    exp = load_experiment(write_toml(BASE), [override])
    data = exp.to_dict()
    node: object = data
    for part in override.split("=")[0].split("."):
        assert isinstance(node, dict)
        node = node[part]
    assert (tuple(node) if isinstance(node, list) else node) == expected


def test_overriding_the_plugin_drops_the_old_plugins_options(write_toml: Write) -> None:
    path = write_toml(BASE + '\n[curiosity]\nplugin = "none"\n')
    exp = load_experiment(path, ["environment.plugin=gymnasium", "environment.id=CartPole-v1"])
    assert exp.environment.entry.name == "gymnasium"
    assert exp.environment.options.id == "CartPole-v1"
    same = load_experiment(path, ["environment.plugin=sim-maze"])
    assert same.environment.options.size == 48  # same plugin: options kept


def test_parse_override_bare_word_is_string() -> None:
    assert parse_override("environment.plugin=sim-maze") == (["environment", "plugin"], "sim-maze")
    assert parse_override("a.b = 2") == (["a", "b"], 2)
    assert parse_override("run.log_dir=/tmp/logs") == (["run", "log_dir"], "/tmp/logs")
    assert parse_override("run.log_dir=./logs") == (["run", "log_dir"], "./logs")


def test_resolved_toml_round_trips(write_toml: Write, cli: CLI, tmp_path: Path) -> None:
    code, first = cli("validate", str(write_toml(BASE)), "seed=9")
    assert code == 0, first
    data = tomllib.loads(first)
    assert data["seed"] == 9
    assert data["models"]["encoder"]["plugin"] == "conv-encoder"
    assert data["curiosity"]["plugin"] == "none"
    assert data["environment"]["move_speed"] == 0.15  # defaults are filled in
    assert "# environment: 'sim-maze' from pamiqx" in first
    again = tmp_path / "again.toml"
    again.write_text(first)
    code, second = cli("validate", str(again))
    assert code == 0 and second == first


def test_debug_shows_the_traceback(write_toml: Write, cli: CLI) -> None:
    path = write_toml(BASE + "\nbogus = 1\n")
    code, out = cli("validate", str(path), "--debug")
    assert code == 2 and "Traceback" in out and "bogus" in out


BAD_INPUTS: list[tuple[str, str, list[str], list[str]]] = [
    # (id, file text, overrides, fragments the one-paragraph message must contain)
    ("toml-syntax", 'name = "x"\n[run\n', [], ["not valid TOML", "line 2"]),
    (
        "unknown-top-key",
        BASE + "\n[runn]\nmax_steps = 1\n",
        [],
        ["'runn'", "unknown key", "did you mean 'run'"],
    ),
    (
        "unknown-run-key",
        BASE.replace("max_steps", "max_step"),
        [],
        ["'run.max_step'", "did you mean 'run.max_steps'"],
    ),
    (
        "wrong-type",
        BASE.replace("5000", '"ten"'),
        [],
        ["'run.max_steps'", "expected an integer", "'ten'"],
    ),
    (
        "bool-is-not-int",
        BASE.replace("seed = 3", "seed = true"),
        [],
        ["'seed'", "expected an integer"],
    ),
    ("validator", BASE.replace("5000", "0"), [], ["'run.max_steps'", "> 0"]),
    (
        "unknown-env-plugin",
        BASE.replace('"sim-maze"', '"sim-maz"'),
        [],
        ["'environment.plugin'", "did you mean 'sim-maze'"],
    ),
    ("missing-environment", 'name = "x"\n', [], ["'environment'", "missing"]),
    (
        "missing-env-plugin",
        'name = "x"\n[environment]\nsize = 3\n',
        [],
        ["'environment.plugin'", "missing required key"],
    ),
    (
        "unknown-plugin-option",
        BASE.replace("rooms = 4", "roms = 4"),
        [],
        ["'environment.roms'", "did you mean 'environment.rooms'"],
    ),
    (
        "plugin-option-range",
        BASE.replace("size = 48", "size = 4"),
        [],
        ["'environment.size'", ">= 16"],
    ),
    (
        "bad-literal",
        BASE.replace('device = "cpu"', 'device = "gpu"'),
        [],
        ["'run.device'", "'gpu'"],
    ),
    (
        "bad-plugin-literal",
        BASE,
        ["environment.action_mode=discret"],
        ["'environment.action_mode'", "did you mean 'discrete'", "command-line override"],
    ),
    ("override-no-equals", BASE, ["run.max_steps"], ["KEY.PATH=VALUE", "run.max_steps"]),
    (
        "override-unknown-key",
        BASE,
        ["run.max_stepz=5"],
        ["command-line override 'run.max_stepz=5'", "did you mean 'run.max_steps'"],
    ),
    (
        "override-wrong-type",
        BASE,
        ["run.max_steps=lots"],
        ["command-line override", "'run.max_steps'", "expected an integer"],
    ),
    ("override-into-value", BASE, ["seed.x=1"], ["'seed' is a value, not a table"]),
    ("override-bad-toml", BASE, ["run.max_steps=[1,"], ["not a TOML value"]),
    (
        "missing-extends",
        'extends = "nowhere.toml"\n' + BASE,
        [],
        ["'extends'", "nowhere.toml", "does not exist"],
    ),
    ("extends-wrong-type", "extends = 3\n" + BASE, [], ["'extends'", "expected a file name"]),
    ("missing-name", BASE.replace('name = "base"', ""), [], ["'name'", "missing required key"]),
    ("bad-name", BASE.replace('name = "base"', 'name = "a b/c"'), [], ["'name'", "names folders"]),
    (
        "unknown-model-plugin",
        BASE + '\n[models.encoder]\nplugin = "convnet"\n',
        [],
        ["'models.encoder.plugin'", "conv-encoder"],
    ),
    (
        "unknown-curiosity",
        BASE + '\n[curiosity]\nplugin = "rdn"\n',
        [],
        ["'curiosity.plugin'", "Unknown curiosity plugin 'rdn'"],
    ),
    (
        "models-not-table",
        "models = 3\n" + BASE,
        [],
        ["'models'", "expected tables"],
    ),
    (
        "array-item-type",
        BASE + '\n[models.encoder]\nplugin = "conv-encoder"\nchannels = [8, "x"]\n',
        [],
        ["'models.encoder.channels[1]'", "expected an integer"],
    ),
]


@pytest.mark.parametrize(
    ("text", "overrides", "fragments"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_a_short_message_and_exit_2(
    write_toml: Write, cli: CLI, text: str, overrides: list[str], fragments: list[str]
) -> None:
    path = write_toml(text)
    code, out = cli("validate", str(path), *overrides)
    assert code == 2, out
    assert "Traceback" not in out
    assert str(path) in out or "command-line override" in out
    for fragment in fragments:
        assert fragment.lower() in out.lower(), (fragment, out)


def test_cyclic_extends(write_toml: Write, cli: CLI) -> None:
    write_toml('extends = "b.toml"\nname = "a"\n', "a.toml")
    path = write_toml('extends = "a.toml"\nname = "b"\n', "b.toml")
    code, out = cli("validate", str(path))
    assert code == 2 and "cycle" in out and "a.toml" in out and "Traceback" not in out


def test_missing_file_and_non_utf8(cli: CLI, tmp_path: Path) -> None:
    code, out = cli("validate", str(tmp_path / "absent.toml"))
    assert code == 2 and "not found" in out and "absent.toml" in out
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    code, out = cli("validate", str(binary))
    assert code == 2 and "cannot read" in out and "Traceback" not in out


def test_error_names_the_file_that_set_the_key(write_toml: Write, cli: CLI) -> None:
    write_toml(BASE.replace("5000", '"many"'), "parent.toml")
    child = write_toml('extends = "parent.toml"\nname = "child"\n')
    code, out = cli("validate", str(child))
    assert code == 2 and "parent.toml: key 'run.max_steps'" in out


def test_unknown_kind_for_list_plugins(cli: CLI) -> None:
    code, out = cli("list-plugins", "--kind", "curiosty")
    assert code == 2 and "did you mean 'curiosity'" in out.lower()


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml")),
    ids=lambda p: p.name,
)
def test_every_shipped_experiment_validates(path: Path) -> None:
    resolved = load_experiment(path)
    assert resolved.experiment.name == path.stem  # run directories are named after the file
    data = tomllib.loads(resolved.to_toml())
    assert data["curiosity"]["plugin"] == resolved.curiosity.entry.name


# One invalid value per numeric [policy] key: each fails in `validate` (exit 2, the key
# named), so `run` never starts with options the learner would reject.
INVALID_POLICY_VALUES: dict[str, list[str]] = {
    "replay_size": ["0"],
    "train_every": ["0"],
    "windows": ["0"],
    "window_length": ["0"],
    "lr": ["0", "-1e-4", "inf", "nan"],
    "weight_decay": ["-0.1", "inf"],
    "rollout_steps": ["0", "-8"],
    "epochs": ["0"],
    "minibatch_size": ["0"],
    "sequence_length": ["0"],
    "gamma_ext": ["1.5", "-0.1"],
    "gamma_int": ["1.01", "nan"],
    "gae_lambda": ["2.0", "-1"],
    "clip_range": ["0", "-0.2"],
    "value_clip_range": ["-1", "0", "inf"],
    "value_coef": ["-0.5"],
    "entropy_coef": ["-0.01", "inf"],
    "max_grad_norm": ["0", "-inf"],
    "ext_coef": ["-1"],
    "int_coef": ["-1", "nan"],
}


def test_every_numeric_policy_key_is_checked() -> None:
    from pamiqx.learner.options import PPOOptions

    fields = attrs.fields(attrs.resolve_types(PPOOptions))
    numeric = {f.name for f in fields if f.type in (int, float, float | None)}
    assert numeric == set(INVALID_POLICY_VALUES)


@pytest.mark.parametrize(
    ("key", "value"),
    [(k, v) for k, values in INVALID_POLICY_VALUES.items() for v in values],
)
def test_invalid_policy_value_fails_validate_naming_the_key(
    write_toml: Write, cli: CLI, key: str, value: str
) -> None:
    path = write_toml(BASE)
    code, out = cli("validate", str(path), f"policy.{key}={value}")
    assert code == 2, out
    assert f"'policy.{key}'" in out and "Traceback" not in out
