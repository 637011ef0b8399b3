"""The one command-line convention of every entry point: click commands whose options read MLproject's values.

MLproject passes every parameter as text: `float`-typed ones as the user wrote them (`5` or `5.0`),
booleans as words. Every step parses them with the types here, so `5.0` means 5 and `true`, `yes`,
`1` and `on` mean the same everywhere, and every option carries help text (`python -m steps.<step> --help`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import click

from steps.lib.operating_point import POLICIES, ThresholdPolicy
from steps.lib.tracking import EXPERIMENT_NAME

FLAG = click.BOOL  # true/false, yes/no, 1/0, on/off, any case
Decorator = Callable[[Callable], Callable]


class WholeNumber(click.ParamType):
    """An integer option that also takes MLproject's float spelling of it (`64.0`), never a fraction (`64.5`)."""

    name = "integer"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if not number.is_integer():
            self.fail(f"{value!r} is not a whole number", param, ctx)
        return int(number)


WHOLE_NUMBER = WholeNumber()


class WholeNumbers(click.ParamType):
    """Several whole numbers in one value, `1,4,16` (or quoted, `"1 4 16"`): one scenario per number."""

    name = "integers"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = [part for part in re.split(r"[,\s]+", str(value)) if part]
        if not parts:
            self.fail("give at least one whole number, e.g. 1,4,16", param, ctx)
        return tuple(WHOLE_NUMBER.convert(part, param, ctx) for part in parts)


WHOLE_NUMBERS = WholeNumbers()


def stack(*decorators: Decorator) -> Decorator:
    """Several click options as one decorator, applied in the order written (so `--help` lists them so).

    Args:
        *decorators: click options (or any decorators), first written first in `--help`.

    Returns:
        One decorator that applies them all.
    """

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def data_run_option(function: Callable) -> Callable:
    """`--data-run-id`: the prepare_data run a step reads its splits from.

    Args:
        function: the step's command function.

    Returns:
        The function with the option (default empty = the newest finished prepare_data run).
    """
    return click.option(
        "--data-run-id", default="", show_default=True, help="prepare_data run id (empty = the newest finished one)"
    )(function)


def experiment_option(purpose: str) -> Callable[[Callable], Callable]:
    """`--experiment`: the MLflow experiment a script reads, `MLFLOW_EXPERIMENT_NAME` or the project's by default.

    Args:
        purpose: what the script does with its runs, for the help text.

    Returns:
        The click option.
    """
    return click.option(
        "--experiment",
        envvar="MLFLOW_EXPERIMENT_NAME",
        default=EXPERIMENT_NAME,
        show_default=True,
        help=f"experiment whose runs are {purpose} (or $MLFLOW_EXPERIMENT_NAME)",
    )


def seed_option(function: Callable) -> Callable:
    """`--seed`: one seed for sampling, initialisation and resampling, so a rerun gives the same figures.

    Args:
        function: the step's command function.

    Returns:
        The function with the option (a whole number).
    """
    return click.option("--seed", type=WHOLE_NUMBER, default=42, show_default=True, help="random seed")(function)


def policy_options(function: Callable) -> Callable:
    """The four operating-point options, the same on every training step and on `main` (steps.lib.operating_point).

    Defaults come from `ThresholdPolicy`, so the command line and the library never disagree; click
    refuses an unknown policy name, `ThresholdPolicy.validate` checks the ranges.

    Args:
        function: the step's command function.

    Returns:
        The function with `--threshold-policy`, `--cost-ratio`, `--beta` and `--min-precision`.
    """
    defaults = ThresholdPolicy()
    return stack(
        click.option(
            "--threshold-policy",
            type=click.Choice(POLICIES),
            default=defaults.name,
            show_default=True,
            help="how the threshold is chosen on validation",
        ),
        click.option(
            "--cost-ratio",
            type=float,
            default=defaults.cost_ratio,
            show_default=True,
            help="cost policy: a missed complaint costs this many false alarms (> 0)",
        ),
        click.option(
            "--beta", type=float, default=defaults.beta, show_default=True, help="f_beta policy: weight of recall (> 0)"
        ),
        click.option(
            "--min-precision",
            type=float,
            default=defaults.min_precision,
            show_default=True,
            help="precision_floor policy: the validation precision to reach, in (0, 1]",
        ),
    )(function)


def parse(command: click.Command, argv: Sequence[str] = ()) -> dict[str, object]:
    """The options a command would run with, parsed and typed but not run.

    Args:
        command: a step's click command.
        argv: its command-line arguments (none = every default).

    Returns:
        The options by name, as the command's body receives them (its keyword arguments).
    """
    with command.make_context(command.name, list(argv)) as context:
        return dict(context.params)
