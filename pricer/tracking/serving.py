"""The options ``pricer serve`` passes on to ``mlflow models serve``, checked before it serves.

``mlflow models serve`` reads them in a child process started after the model is downloaded and
``serving ... at ...`` is said: a bad one was that child's usage block and traceback, exit 1,
under a line claiming to serve. They are read here first with the parsers that would read them
there, MLflow's own command for its options (types, unknown options, missing values, its
environment variables) and uvicorn's for ``--workers``, which MLflow hands on as text; so what
is refused is what the child would refuse, and a new MLflow option needs nothing here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import click
from click.core import ParameterSource
from mlflow.models.cli import serve
from uvicorn.main import main as uvicorn_main

from pricer.errors import UserError

COMMAND = "mlflow models serve"
# Options pricer serve sets itself, and why: given after -- as well, MLflow would take the last
# one, so the server would run elsewhere than pricer serve said (or checked was free), or on
# a model it never checked.
OWNED = {
    "model_uri": "pricer serve serves the copy it checked: choose the model before -- "
    "(--data, --model-name, --alias, --model-uri)",
    "host": "give the address before -- (pricer serve --host ...)",
    "port": "give the port before -- (pricer serve --port ...)",
    "env_manager": "pricer serve runs the server in this environment",
    "no_conda": "pricer serve runs the server in this environment",
}
# MLflow falls back to its default for a timeout of 0 and times out every request for a
# negative one; uvicorn runs one worker for 0 or fewer: a count below 1 is a mistake.
AT_LEAST_ONE = ("timeout", "workers")
_PLACEHOLDER = "<checked copy>"  # the model option, which MLflow requires and pricer serve sets


class ServerOptionError(UserError):
    """An option after -- that mlflow models serve would refuse, or one pricer serve sets."""


def check_server_options(extra: Sequence[str]) -> None:
    """Refuse (``ServerOptionError``, one line) options after ``--`` that would fail the server
    or that pricer serve sets itself."""
    try:
        # No --help either: MLflow's help would print instead of a server, after "serving".
        # Its options' own warnings (--env-manager conda's) are the server's to give.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            context = serve.make_context(
                COMMAND, ["--model-uri", _PLACEHOLDER, *extra], help_option_names=[]
            )
    except click.UsageError as error:
        raise ServerOptionError(_said(error)) from None
    params = context.params
    for name, reason in OWNED.items():
        given = (
            params[name] != _PLACEHOLDER
            if name == "model_uri"
            else (context.get_parameter_source(name) is ParameterSource.COMMANDLINE)
        )
        if given:
            option = next(p for p in serve.params if p.name == name).opts[0]
            raise ServerOptionError(f"{option} after --: {reason}")
    if params["workers"] is not None:  # a string to MLflow, an integer to uvicorn
        try:
            parsed = uvicorn_main.make_context(
                "uvicorn", ["--workers", str(params["workers"]), "app"], help_option_names=[]
            )
        except click.UsageError as error:
            raise ServerOptionError(_said(error)) from None
        params = {**params, "workers": parsed.params["workers"]}
    for name in AT_LEAST_ONE:
        if params[name] is not None and params[name] < 1:
            raise ServerOptionError(
                f"--{name} for {COMMAND} must be at least 1, not {params[name]}"
            )


def _said(error: click.UsageError) -> str:
    return f"an option for {COMMAND} (after --, or its MLFLOW_* variable): {error.format_message()}"
