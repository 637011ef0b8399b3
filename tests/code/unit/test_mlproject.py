"""MLproject is generated from the steps' click commands (scripts/generate_mlproject.py) and says the same."""

from __future__ import annotations

import click
import pytest
import yaml
from click.testing import CliRunner

from scripts import generate_mlproject
from scripts.generate_mlproject import ENTRY_POINTS, MLPROJECT, command_of, differences, generate
from steps import compare_lstm, main, train_bert, train_lstm
from steps.lib.cli import WholeNumber

COMMITTED = MLPROJECT.read_text(encoding="utf-8")
COMMANDS = {entry.name: command_of(entry) for entry in ENTRY_POINTS}
DECLARED = yaml.safe_load(COMMITTED)["entry_points"]


def test_the_committed_mlproject_is_the_generated_one():
    found = differences(COMMITTED, generate(COMMANDS))
    assert not found, "MLproject is stale, run `python -m scripts.generate_mlproject`:\n" + "\n".join(found)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda entry: entry.name)
def test_every_parameter_is_its_click_options_and_back(entry):
    options = {param.name: param for param in COMMANDS[entry.name].params}
    parameters = DECLARED[entry.name]["parameters"]
    assert list(parameters) == list(options)
    for name, option in options.items():
        numeric = isinstance(option.type, (click.types.FloatParamType, click.types.IntParamType, WholeNumber))
        assert parameters[name]["type"] == ("float" if numeric else "string"), name
        assert f"{option.opts[0]} {{{name}}}" in DECLARED[entry.name]["command"], name
        if option.required:
            assert "default" not in parameters[name], name
            continue
        # what `mlflow run` passes when the parameter is left out, read as click reads it, is click's default
        assert option.type_cast_value(click.Context(COMMANDS[entry.name]), str(parameters[name]["default"])) == (
            option.default
        ), name


def test_main_forwards_only_what_its_children_take():
    main_options = {param.name for param in main.main.params}
    bert_options = {param.name for param in train_bert.main.params}
    for name in main.TRANSFORMER_FORWARDED:
        assert f"transformer_{name}" in main_options and name in bert_options, name
    assert set(compare_lstm.FORWARDED_TO_ARMS) <= {param.name for param in train_lstm.main.params}


def with_new_option(command: click.Command) -> click.Command:
    changed = click.Command(command.name, params=list(command.params), callback=command.callback)
    changed.params.append(click.Option(["--drift-window"], type=float, default=7.0))
    return changed


def test_check_names_the_parameter_a_changed_command_adds(monkeypatch, tmp_path):
    target = tmp_path / "MLproject"
    target.write_text(COMMITTED, encoding="utf-8")
    changed = with_new_option(COMMANDS["monitor"])
    monkeypatch.setattr(generate_mlproject, "generate", lambda: generate(COMMANDS | {"monitor": changed}))

    result = CliRunner().invoke(generate_mlproject.main, ["--check", "--mlproject", str(target)])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("monitor: parameter drift_window missing")
    assert lines[-1] == "MLproject is stale: run `python -m scripts.generate_mlproject`"
    assert target.read_text(encoding="utf-8") == COMMITTED  # --check writes nothing

    assert CliRunner().invoke(generate_mlproject.main, ["--mlproject", str(target)]).exit_code == 0
    written = yaml.safe_load(target.read_text(encoding="utf-8"))["entry_points"]["monitor"]
    assert written["parameters"]["drift_window"] == {"type": "float", "default": 7}
    assert written["command"].endswith("--drift-window {drift_window}")
    assert CliRunner().invoke(generate_mlproject.main, ["--check", "--mlproject", str(target)]).exit_code == 0


def test_check_names_a_default_edited_by_hand(tmp_path):
    edited = COMMITTED.replace("psi_alert: {type: float, default: 0.2}", "psi_alert: {type: float, default: 0.3}")
    assert differences(edited, generate(COMMANDS)) == [
        "monitor: parameter psi_alert is {'type': 'float', 'default': 0.3} in MLproject, "
        "{'type': 'float', 'default': 0.2} in click"
    ]


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (True, '"true"'),
        (False, '"false"'),
        (2.0, "2"),
        (3e-05, "0.00003"),
        (0.8, "0.8"),
        (200_000, "200000"),
        ("", '""'),
        ("none", "none"),
        ("models:/m@champion", '"models:/m@champion"'),
        ("yes", '"yes"'),
    ],
)
def test_defaults_read_back_as_written(value, rendered):
    assert generate_mlproject.render_scalar(value) == rendered
    read = yaml.safe_load(f"key: {rendered}")["key"]
    assert read == (str(value).lower() if isinstance(value, bool) else value)


CHOICES = {
    ("main", "source"),
    ("main", "transformer_label_scheme"),
    ("main", "transformer_lr_scheduler"),
    ("prepare_data", "source"),
    ("train_baseline", "preprocessing"),
    ("train_baseline", "class_weight"),
    ("register", "metric"),
    ("train_lstm", "preprocessing"),
    ("train_lstm", "embeddings"),
    ("compare_lstm", "embeddings"),
    ("train_bert", "preprocessing"),
    ("train_bert", "recipe"),
    ("train_bert", "lr_scheduler"),
    ("train_bert", "label_scheme"),
    ("train_bert", "bf16"),
} | {(name, "threshold_policy") for name in ("main", "train_baseline", "train_lstm", "compare_lstm", "train_bert")}
CHOICE_OPTIONS = [
    (name, option)
    for name, command in COMMANDS.items()
    for option in command.params
    if isinstance(option.type, click.Choice)
]


def test_every_enumeration_is_a_click_choice():
    assert {(name, option.name) for name, option in CHOICE_OPTIONS} == CHOICES


@pytest.mark.parametrize(("name", "option"), CHOICE_OPTIONS, ids=lambda value: getattr(value, "name", value))
def test_an_unknown_value_is_refused_in_one_line_naming_the_accepted_ones(name, option):
    accepted = ", ".join(f"'{choice}'" for choice in option.type.choices)
    wrong = option.type.choices[0].upper()  # case-sensitive: `NONE` is not `none`
    result = CliRunner().invoke(COMMANDS[name], [option.opts[0], wrong])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for '{option.opts[0]}': '{wrong}' is not one of {accepted}."]
