"""Command-line glue shared by the Hydra apps."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable


def expand_overrides(arguments: list[str]) -> list[str]:
    """Split arguments that hold several Hydra overrides; drop empty ones.

    ``mlflow run -P overrides="a=1 b=2"`` shell-quotes the value, so the app receives one
    argument ``a=1 b=2``; Hydra needs two. An empty ``overrides`` arrives as ``''``.
    """
    expanded: list[str] = []
    for argument in arguments:
        if any(space in argument for space in " \t\n"):
            expanded.extend(shlex.split(argument))
        elif argument:
            expanded.append(argument)
    return expanded


def run(main: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` function with MLproject-style arguments expanded."""
    sys.argv = [sys.argv[0], *expand_overrides(sys.argv[1:])]
    main()
