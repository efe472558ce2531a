"""Shell completion: experiment files, override keys with their values, plugin names."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pamiqx.api import PluginKind
from pamiqx.cli import app
from pamiqx.completion import (
    bash_break_token,
    current_word,
    flatten,
    load_settings,
    override_candidates,
    plugin_kind,
    rejoin_words,
    toml_path_candidates,
    value_text,
)
from pamiqx.experiment import parse_override

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
RND_MAZE = EXPERIMENTS / "rnd-maze.toml"

SETTINGS = {
    "seed": 0,
    "description": "two words",
    "environment.plugin": "sim-maze",
    "models.encoder.plugin": "conv-encoder",
    "models.encoder.channels": [32, 64],
    "curiosity.plugin": "rnd",
    "policy.lr": 3e-4,
    "policy.lam": 0.95,
    "policy.epochs": 4,
    "tracking.repo": "",
}
NAMES: dict[PluginKind, list[str]] = {
    "environment": ["gymnasium", "sim-maze"],
    "model": ["actor-critic", "conv-encoder", "mlp-encoder"],
    "curiosity": ["icm", "none", "rnd"],
}


def names(kind: PluginKind) -> Sequence[str]:
    return NAMES[kind]


# --- pure functions ------------------------------------------------------------------------


def test_flatten_gives_dotted_keys_in_order() -> None:
    table = {"seed": 1, "run": {"max_steps": 5}, "models": {"encoder": {"plugin": "x"}}}
    assert flatten(table) == {"seed": 1, "run.max_steps": 5, "models.encoder.plugin": "x"}
    assert flatten({"a": {}}) == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3e-4, "0.0003"),
        (1e-5, "1e-05"),
        (2.0, "2.0"),
        (math.inf, "inf"),
        (50_000, "50000"),
        (-1, "-1"),
        (True, "true"),
        (False, "false"),
        ("sim-maze", "sim-maze"),
        ("minigrid:MiniGrid-FourRooms-v0", "minigrid:MiniGrid-FourRooms-v0"),
        ([32, 64, 64], "[32,64,64]"),
        ([], "[]"),
        # Values a shell would split or a TOML reader would read as something else.
        ("", None),
        ("two words", None),
        ("true", None),
        ("0.5", None),
        (["a", "b"], None),
        ({"a": 1}, None),
    ],
)
def test_value_text_reads_back_as_the_value(value: object, text: str | None) -> None:
    assert value_text(value) == text
    if text is not None:
        parsed = parse_override(f"k={text}")[1]
        assert type(parsed) is type(value) and repr(parsed) == repr(value)


def test_plugin_keys_name_their_kind() -> None:
    assert plugin_kind("environment.plugin") == "environment"
    assert plugin_kind("curiosity.plugin") == "curiosity"
    assert plugin_kind("models.encoder.plugin") == "model"
    assert plugin_kind("models.new-role.plugin") == "model"
    assert plugin_kind("models.plugin") is None
    assert plugin_kind("policy.lr") is None


def test_keys_complete_with_their_current_values() -> None:
    assert override_candidates("policy.l", SETTINGS, names) == [
        "policy.lr=0.0003",
        "policy.lam=0.95",
    ]
    assert override_candidates("policy.lr=", SETTINGS, names) == ["policy.lr=0.0003"]
    assert override_candidates("models.encoder.c", SETTINGS, names) == [
        "models.encoder.channels=[32,64]"
    ]
    # A value that needs quotes is left for the user to type.
    assert override_candidates("desc", SETTINGS, names) == ["description="]
    assert override_candidates("tracking.", SETTINGS, names) == ["tracking.repo="]
    assert override_candidates("policy.lr=0.1", SETTINGS, names) == []
    assert override_candidates("nothing", SETTINGS, names) == []
    assert len(override_candidates("", SETTINGS, names)) == len(SETTINGS)


def test_plugin_keys_complete_with_the_installed_plugins_of_their_kind() -> None:
    assert override_candidates("curiosity.plugin=r", SETTINGS, names) == ["curiosity.plugin=rnd"]
    assert override_candidates("curiosity.plugin=", SETTINGS, names) == [
        "curiosity.plugin=icm",
        "curiosity.plugin=none",
        "curiosity.plugin=rnd",
    ]
    assert override_candidates("environment.plugin=g", SETTINGS, names) == [
        "environment.plugin=gymnasium"
    ]
    assert override_candidates("models.encoder.plugin=", {}, names) == [
        f"models.encoder.plugin={n}" for n in NAMES["model"]
    ]
    # Without '=', the key completes to its current value like any other.
    assert override_candidates("curiosity.p", SETTINGS, names) == ["curiosity.plugin=rnd"]


def test_settings_come_from_the_file_and_the_earlier_overrides() -> None:
    settings = load_settings(RND_MAZE, [])
    assert settings["policy.lr"] == 3e-4
    assert settings["curiosity.plugin"] == "rnd"
    assert "curiosity.eta" not in settings
    icm = load_settings(RND_MAZE, ["curiosity.plugin=icm"])
    assert icm["curiosity.plugin"] == "icm" and "curiosity.eta" in icm
    # An override that does not apply falls back to the file alone.
    assert load_settings(RND_MAZE, ["policy.nope=1"]) == settings


def test_a_file_that_does_not_load_has_no_settings(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[policy\n")
    assert load_settings(broken, []) == {}
    assert load_settings(tmp_path / "missing.toml", ["seed=1"]) == {}
    assert load_settings(tmp_path, []) == {}


def test_bash_pieces_of_a_word_are_put_back_together() -> None:
    # zsh and fish pass whole words.
    assert current_word(["seed=1"], "curiosity.plugin=r") == (0, "", "curiosity.plugin=r")
    # bash splits at '=' and ':' and keeps the text up to its completion point.
    assert current_word(["seed=1", "curiosity.plugin", "="], "r") == (
        2,
        "curiosity.plugin=",
        "curiosity.plugin=r",
    )
    assert current_word(["curiosity.plugin"], "=") == (1, "curiosity.plugin=", "curiosity.plugin=")
    assert current_word(["environment.id", "=", "minigrid", ":"], "Mini") == (
        4,
        "environment.id=minigrid:",
        "environment.id=minigrid:Mini",
    )
    # Words before a space stay apart.
    assert current_word(["seed", "=", "1"], "policy.l") == (0, "", "policy.l")
    assert rejoin_words(["seed", "=", "1", "env.id", "=", "a", ":", "b", "x=2"]) == [
        "seed=1",
        "env.id=a:b",
        "x=2",
    ]


def test_a_lone_equals_sign_is_read_from_bash_comp_words() -> None:
    assert bash_break_token("pamiqx run a.toml curiosity.plugin =", "4") == "="
    assert bash_break_token("pamiqx run a.toml curiosity.plugin", "4") == ""
    assert bash_break_token("pamiqx run a.toml x", "3") == ""
    assert bash_break_token("pamiqx run 'open", "2") == ""
    assert bash_break_token("pamiqx", "x") == ""


def test_experiment_files_complete_to_toml_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "a.toml").write_text("")
    (tmp_path / "exp" / "b.toml").write_text("")
    (tmp_path / "exp" / "notes.txt").write_text("")
    (tmp_path / "exp" / "sub").mkdir()
    (tmp_path / "exp" / ".hidden.toml").write_text("")
    (tmp_path / "other.toml").write_text("")
    assert toml_path_candidates("exp/", tmp_path) == ["exp/a.toml", "exp/b.toml", "exp/sub/"]
    assert toml_path_candidates("exp/a", tmp_path) == ["exp/a.toml"]
    assert toml_path_candidates("exp/.", tmp_path) == ["exp/.hidden.toml"]
    assert toml_path_candidates("", tmp_path) == ["exp/", "other.toml"]
    # A single folder opens, so that the shell does not end the word after it.
    assert toml_path_candidates("e", tmp_path) == ["exp/a.toml", "exp/b.toml", "exp/sub/"]
    assert toml_path_candidates("exp/s", tmp_path) == ["exp/sub/"]  # empty: stays
    absolute = f"{tmp_path}/o"
    assert toml_path_candidates(absolute) == [f"{tmp_path}/other.toml"]
    assert toml_path_candidates("missing/", tmp_path) == []


# --- through the shell protocol ------------------------------------------------------------


def bash_complete(words: str, cword: int) -> list[str]:
    """Complete as typer's bash script asks: COMP_WORDS split at '=' and ':'."""
    env = {"_PAMIQX_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(app, [], env=env, prog_name="pamiqx")
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line]


def test_bash_completes_a_key_with_its_value() -> None:
    assert "policy.lr=0.0003" in bash_complete(f"pamiqx run {RND_MAZE} policy.l", 3)
    assert "policy.lr=0.0003" in bash_complete(f"pamiqx validate {RND_MAZE} seed = 1 policy.l", 6)


def test_bash_completes_plugin_names_after_the_equals_sign() -> None:
    assert bash_complete(f"pamiqx run {RND_MAZE} curiosity.plugin = rn", 5) == ["rnd"]
    assert bash_complete(f"pamiqx run {RND_MAZE} curiosity.plugin = r", 5) == ["random", "rnd"]
    after = bash_complete(f"pamiqx run {RND_MAZE} curiosity.plugin =", 4)
    assert {"icm", "none", "rnd"} <= set(after)
    assert "sim-maze" in bash_complete(f"pamiqx run {RND_MAZE} environment.plugin = s", 5)


def test_bash_completes_the_experiment_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXPERIMENTS.parent)
    assert bash_complete("pamiqx run experiments/rnd-m", 2) == ["experiments/rnd-maze.toml"]


def test_a_file_that_does_not_load_completes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[policy\n")
    assert bash_complete(f"pamiqx run {broken} policy.l", 3) == []
    assert bash_complete(f"pamiqx run {tmp_path / 'missing.toml'} policy.l", 3) == []


def test_zsh_gets_whole_words() -> None:
    env = {
        "_PAMIQX_COMPLETE": "complete_zsh",
        "_TYPER_COMPLETE_ARGS": f"pamiqx run {RND_MAZE} curiosity.plugin=r",
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="pamiqx")
    assert result.exit_code == 0
    assert '"curiosity.plugin=rnd"' in result.output


def test_the_installed_command_completes_and_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    pamiqx = Path(sys.executable).with_name("pamiqx")
    env = {
        **os.environ,
        "_PAMIQX_COMPLETE": "complete_bash",
        "COMP_WORDS": f"pamiqx run {RND_MAZE} policy.l",
        "COMP_CWORD": "3",
    }
    result = subprocess.run(
        [str(pamiqx)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "policy.lr=0.0003" in result.stdout.splitlines()
    # No completion request may leak in from the environment: this is a plain command.
    clean = dict.fromkeys(("_PAMIQX_COMPLETE", "_TYPER_COMPLETE_ARGS", "COMP_WORDS", "COMP_CWORD"))
    # typer detects the shell from the process tree (shellingham), which has none when
    # the tests run detached from a terminal: say which one is asking.
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    script = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="pamiqx", env=clean)
    assert script.exit_code == 0, (script.output, script.exception)
    assert "_PAMIQX_COMPLETE=complete_bash" in script.output
