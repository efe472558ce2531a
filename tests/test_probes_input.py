"""Probes: hostile or mistaken input to validate, run, new-plugin and list-plugins.

Each probe runs the command line in-process and asserts the exit code (2 for a
mistake the user can fix), the key content of the message (the file, the key,
the plugin, or the command-line override to blame), that no traceback is shown,
and that nothing was written (or imported) that should not be.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fake_dists import curiosity_module, write_distribution

CLI = Callable[..., tuple[int, str]]
Write = Callable[..., Path]

EXPERIMENT = """
name = "t"
seed = 1

[environment]
plugin = "sim-maze"
size = 32
"""


def refused(code: int, out: str, *fragments: str) -> None:
    """Assert exit code 2, one ``error:`` message holding every fragment, and no traceback."""
    assert code == 2, out
    assert "error:" in out and "Traceback" not in out, out
    for fragment in fragments:
        assert fragment in out, (fragment, out)


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- 1. an experiment file imports nothing by accident -------------------------------------


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An ``evil.py`` in the current directory, importable as ``python -m pamiqx`` would see it.

    Importing it writes ``marker`` (an absolute path, so the marker is found wherever
    the import happens); yields the marker path, which must never exist.
    """
    marker = tmp_path / "marker"
    (tmp_path / "evil.py").write_text(
        "import gymnasium\n"
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "class Wrapper(gymnasium.Wrapper):\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    # `python -m pamiqx` puts the current directory first on sys.path; '' is the
    # interactive (and `python -c`) spelling of the same.
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), *sys.path])
    importlib.invalidate_caches()
    yield marker
    sys.modules.pop("evil", None)


def gym_experiment(tmp_path: Path, environment: str) -> str:
    return f"""
name = "gym"
run.log_dir = '{tmp_path / "logs"}'
run.max_steps = 64
tracking.enabled = false

[environment]
plugin = "gymnasium"
{environment}
"""


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_module_prefix_in_the_id_is_refused_and_never_imported(
    cli: CLI, write_toml: Write, evil: Path, tmp_path: Path, command: str
) -> None:
    path = write_toml(gym_experiment(tmp_path, 'id = "evil:Foo-v0"'))
    code, out = cli(command, str(path))
    refused(code, out, "exp.toml", "'environment.id'", 'import_modules = ["evil"]', 'id = "Foo-v0"')
    assert not evil.exists()
    assert files_under(tmp_path / "logs") == []


def test_the_minigrid_prefix_names_the_explicit_form(cli: CLI, write_toml: Write) -> None:
    path = write_toml(EXPERIMENT.replace('plugin = "sim-maze"\nsize = 32', ""))
    code, out = cli(
        "validate",
        str(path),
        "environment.plugin=gymnasium",
        "environment.id=minigrid:MiniGrid-FourRooms-v0",
    )
    refused(code, out, 'import_modules = ["minigrid"]', 'id = "MiniGrid-FourRooms-v0"')


def test_import_modules_never_imports_from_the_current_directory(
    cli: CLI, write_toml: Write, evil: Path, tmp_path: Path
) -> None:
    path = write_toml(gym_experiment(tmp_path, 'id = "CartPole-v1"\nimport_modules = ["evil"]'))
    code, out = cli("run", str(path))
    refused(code, out, "import_modules", "'evil'", "not installed", "evil.py", "current directory")
    assert not evil.exists()
    assert files_under(tmp_path / "logs") == []


def test_a_wrapper_is_never_imported_from_the_current_directory(
    cli: CLI, write_toml: Write, evil: Path, tmp_path: Path
) -> None:
    path = write_toml(gym_experiment(tmp_path, 'id = "CartPole-v1"\nwrappers = ["evil:Wrapper"]'))
    code, out = cli("run", str(path))
    refused(code, out, "wrapper 'evil:Wrapper'", "not installed")
    assert not evil.exists()
    assert files_under(tmp_path / "logs") == []


@pytest.mark.parametrize(
    ("environment", "fragments"),
    [
        ('id = "CartPole-v1"\nimport_modules = ["../evil"]', ["environment.import_modules"]),
        ('id = "CartPole-v1"\nimport_modules = ["my-module"]', ["not a module name"]),
        ('id = "CartPole-v1"\nwrappers = ["evil"]', ["environment.wrappers", "'module:Class'"]),
        ('id = ""', ["environment.id", "CartPole-v1"]),
    ],
    ids=["path", "file-name", "wrapper-without-class", "empty-id"],
)
def test_malformed_module_names_fail_validation(
    cli: CLI, write_toml: Write, tmp_path: Path, environment: str, fragments: list[str]
) -> None:
    code, out = cli("validate", str(write_toml(gym_experiment(tmp_path, environment))))
    refused(code, out, "exp.toml", *fragments)


def test_a_wrapper_must_be_a_wrapper_class(cli: CLI, write_toml: Write, tmp_path: Path) -> None:
    # Any installed callable would otherwise be called with the environment.
    path = write_toml(gym_experiment(tmp_path, 'id = "CartPole-v1"\nwrappers = ["os:getcwd"]'))
    code, out = cli("run", str(path))
    refused(code, out, "'os:getcwd'", "not a gymnasium.Wrapper class")
    assert files_under(tmp_path / "logs") == []


# --- 2. new-plugin refuses names and folders ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("rnd", ["'rnd' is taken", "curiosity plugin 'rnd'", "pamiqx-rnd"]),
        ("pamiqx-rnd", ["'pamiqx-rnd' is taken", "distribution pamiqx-rnd"]),
        ("none", ["'none' is taken", "curiosity plugin 'none'"]),
        ("sim-maze", ["'sim-maze' is taken", "environment plugin"]),
        ("pamiqx-fresh", ["'pamiqx-' prefix", "new-plugin curiosity fresh"]),
    ],
)
def test_new_plugin_refuses_taken_names(
    cli: CLI, tmp_path: Path, name: str, fragments: list[str]
) -> None:
    target = tmp_path / "out"
    code, out = cli("new-plugin", "curiosity", name, "--dir", str(target))
    refused(code, out, *fragments)
    assert not target.exists()


def test_new_plugin_refuses_a_file_as_its_folder(cli: CLI, tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    code, out = cli("new-plugin", "curiosity", "fresh", "--dir", str(file))
    refused(code, out, "--dir", "notes.txt", "is a file")
    assert file.read_text() == "mine" and sorted(tmp_path.iterdir()) == [file]
    code, out = cli("new-plugin", "curiosity", "fresh", "--dir", str(file / "below"))
    refused(code, out, "cannot write the package pamiqx-fresh")
    assert sorted(tmp_path.iterdir()) == [file]


# --- 3. messages quote user text literally ----------------------------------------------------


def test_an_emoji_code_in_a_file_name_is_printed_as_typed(cli: CLI, write_toml: Write) -> None:
    path = write_toml(EXPERIMENT + "bogus = 1\n", name=":thumbs_up:.toml")
    code, out = cli("validate", str(path))
    refused(code, out, ":thumbs_up:.toml", "'environment.bogus'")
    assert "\N{THUMBS UP SIGN}" not in out


@pytest.mark.parametrize(
    ("text", "override"),
    [
        ('"[bold]:thumbs_up:[/bold]" = 1\n', None),
        ("", "run.:thumbs_up:=1"),
        ("", ":smile:"),
    ],
    ids=["key-in-file", "bad-override-key", "override-without-value"],
)
def test_emoji_codes_and_markup_in_keys_are_printed_as_typed(
    cli: CLI, write_toml: Write, text: str, override: str | None
) -> None:
    path = write_toml(EXPERIMENT + text)
    code, out = cli("validate", str(path), *([override] if override else []))
    refused(code, out, override or "[bold]:thumbs_up:[/bold]")
    assert (
        "\N{THUMBS UP SIGN}" not in out
        and "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in out
    )


def test_markup_in_a_file_name_is_printed_as_typed(cli: CLI, write_toml: Write) -> None:
    path = write_toml(EXPERIMENT + "bogus = 1\n", name="[red]x.toml")
    code, out = cli("validate", str(path))
    refused(code, out, "[red]x.toml: key 'environment.bogus'")


def test_a_newline_in_a_path_stays_on_one_line(cli: CLI, tmp_path: Path) -> None:
    code, out = cli("validate", str(tmp_path / "a\nb.toml"))
    refused(code, out, "a\\nb.toml", "experiment file not found")
    assert len(out.splitlines()) == 2  # the message and the --debug hint


def test_list_plugins_prints_summaries_and_reasons_as_typed(
    cli: CLI, dist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = "[bold]Loud[/bold] :thumbs_up: needs pamiqx[minigrid]"
    write_distribution(
        dist_root,
        "pamiqx-loud",
        "1.0",
        {"loud_plugin": curiosity_module("loud").replace("Test curiosity loud.", summary)},
        {"loud": "loud_plugin"},
    )
    write_distribution(
        dist_root,
        "pamiqx-broken",
        "1.0",
        {"broken_plugin": "raise RuntimeError('[red]:boom: pip install pamiqx[minigrid]')\n"},
        {"broken": "broken_plugin"},
    )
    monkeypatch.setenv("COLUMNS", "400")  # no folded cells
    code, out = cli("list-plugins", "--kind", "curiosity")
    assert code == 0 and "Traceback" not in out, out
    assert summary in out
    assert "[red]:boom: pip install pamiqx[minigrid]" in out
    code, out = cli("list-plugins", "--kind", ":thumbs_up:")
    refused(code, out, "--kind ':thumbs_up:'")


# --- 4. messages blame the right source --------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["run.max_steps=-1"], ["command-line override 'run.max_steps=-1'", "'run.max_steps'"]),
        (["foo.bar=1"], ["command-line override 'foo.bar=1'", "key 'foo'"]),
        (
            ["curiosity.plugin=icm", "curiosity.eta=-1"],
            ["command-line override 'curiosity.eta=-1'", "'curiosity.eta'"],
        ),
        (
            ["environment.plugin=gymnasium"],
            ["command-line override 'environment.plugin=gymnasium'", "'environment.id'"],
        ),
        (["curiosity={plugin='icm',beta=2}"], ["command-line override", "'curiosity.beta'"]),
    ],
    ids=["value", "new-table", "switched-plugin", "switched-env", "inline-table"],
)
def test_an_override_is_blamed_not_the_file(
    cli: CLI, write_toml: Write, overrides: list[str], fragments: list[str]
) -> None:
    path = write_toml(EXPERIMENT + '\n[curiosity]\nplugin = "rnd"\n')
    code, out = cli("validate", str(path), *overrides)
    refused(code, out, *fragments)
    assert "exp.toml" not in out


def test_an_inherited_option_is_blamed_on_the_file_that_set_it(cli: CLI, write_toml: Write) -> None:
    write_toml(EXPERIMENT + '\n[curiosity]\nplugin = "icm"\neta = -1.0\n', name="parent.toml")
    child = write_toml('extends = "parent.toml"\n[curiosity]\nplugin = "icm"\nbeta = 0.5\n')
    code, out = cli("validate", str(child))
    refused(code, out, "parent.toml: key 'curiosity.eta'")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_name_too_long_for_a_folder_is_blamed_on_name(
    cli: CLI, write_toml: Write, tmp_path: Path, command: str
) -> None:
    path = write_toml(EXPERIMENT.replace('"t"', '"' + "n" * 300 + '"'))
    code, out = cli(command, str(path), f"run.log_dir='{tmp_path / 'logs'}'")
    refused(code, out, "exp.toml: key 'name'", "at most 128 characters")
    assert "log" not in out.split("key 'name'")[1]
    assert not (tmp_path / "logs").exists()


# --- 5. numbers, strings and files ---------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("run.max_steps=1e400", ["'run.max_steps'", "expected an integer"]),
        ("run.max_steps=" + "9" * 30, ["'run.max_steps'", "out of range", "64-bit"]),
        ("run.max_steps=1000000000000", ["'run.max_steps'", "999999999999"]),
        ("run.num_envs=100000000", ["'run.num_envs'", "1024"]),
        ("policy.lr=1e400", ["'policy.lr'", "finite"]),
        ("seed=-1", ["'seed'", "non-negative"]),
        (f"seed={2**63}", ["'seed'", "out of range"]),
        ("seed=" + "1" * 5000, ["thousands of digits"]),
        ("seed=" + "[" * 5000, ["nested"]),
        ("name=", ["the value is empty", "name='\"\"'"]),
        ('name=""', ["'name'", "non-empty"]),
        ('run.log_dir="a\\u0000b"', ["'run.log_dir'", "control characters", "\\x00"]),
        ('run.log_dir="a\\nb"', ["'run.log_dir'", "control characters"]),
        ('tracking.repo="\\u001b[31m"', ["'tracking.repo'", "control characters"]),
    ],
)
def test_hostile_override_values_fail_validation(
    cli: CLI, write_toml: Write, tmp_path: Path, override: str, fragments: list[str]
) -> None:
    path = write_toml(EXPERIMENT)
    code, out = cli("validate", str(path), override)
    refused(code, out, "command-line override", *fragments)
    assert len(out) < 1000  # a 5000-digit value is not quoted in full
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]


def test_the_largest_seed_validates(cli: CLI, write_toml: Write) -> None:
    code, out = cli("validate", str(write_toml(EXPERIMENT)), f"seed={2**63 - 1}")
    assert code == 0, out


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("seed = " + "7" * 5000, ["not valid TOML", "thousands of digits"]),
        ("x = " + "[" * 5000, ["not valid TOML", "nested"]),
        ("seed = 1e400", ["key 'seed'", "expected an integer"]),
        ("seed = " + "9" * 25, ["key 'seed'", "out of range"]),
        ('description = "ok"\n"" = 1', ["unknown key"]),
    ],
    ids=["digits", "nesting", "float-overflow", "int-overflow", "empty-key"],
)
def test_hostile_file_values_fail_validation(
    cli: CLI, write_toml: Write, text: str, fragments: list[str]
) -> None:
    path = write_toml(text + "\n" + EXPERIMENT.replace("seed = 1\n", ""))
    code, out = cli("validate", str(path))
    refused(code, out, "exp.toml", *fragments)


def test_folders_are_not_experiment_files(cli: CLI, write_toml: Write, tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    code, out = cli("validate", str(tmp_path / "folder.toml"))
    refused(code, out, "folder.toml: is a folder")
    path = write_toml('extends = "folder.toml"\n' + EXPERIMENT)
    code, out = cli("validate", str(path))
    refused(code, out, "exp.toml: key 'extends'", "'folder.toml' is not a file")


def test_a_byte_order_mark_is_not_an_error(cli: CLI, tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_text("\ufeff" + EXPERIMENT, encoding="utf-8")
    code, out = cli("validate", str(path))
    assert code == 0, out


def test_unicode_keys_and_values_are_named_as_written(cli: CLI, write_toml: Write) -> None:
    path = write_toml(EXPERIMENT + '"été" = 1\n', name="expérience.toml")
    code, out = cli("validate", str(path))
    refused(code, out, "expérience.toml: key 'environment.été'")
