"""Command-line glue shared by the Hydra apps."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from pricer import interrupt
from pricer.errors import (
    USER_ERROR_STATUS,
    ConfigError,
    UserError,
    ending,
    locate_interpolation,
    record_ending,
    unknown_name,
)
from pricer.paths import require_config_dir
from pricer.tracking.redaction import redact_given, redact_text

if TYPE_CHECKING:
    from hydra.core.override_parser.overrides_parser import OverridesParser

_HYDRA_JOB_BANNER = "Error executing job with overrides:"
_MISSING_PACKAGE = re.compile(r"package '(.*)' not found in config")
# How an override starts: a key (a config group's path, a package after @) and "=", maybe
# after + or ++; or a deletion, ~key with or without a value.
_OVERRIDE_START = re.compile(r"(\+\+?)?[A-Za-z_][\w.\-/@]*=|~[A-Za-z_][\w.\-/@]*(=|$)")
# One of Hydra's flags (-m, --cfg, --config-dir=...): the word after one is its value.
_FLAG = re.compile(r"-{1,2}[A-Za-z][\w-]*(=\S*)?")


def expand_overrides(arguments: list[str]) -> list[str]:
    """Split arguments that hold several Hydra overrides; drop empty ones.

    ``mlflow run -P overrides="a=1 b=2"`` shell-quotes the value, so the app receives one
    argument ``a=1 b=2``; Hydra needs two. An empty ``overrides`` arrives as ``''``.

    A space inside one override stays there: a piece that does not start an override (``1.0)``
    in ``model.alpha=interval(0.1, 1.0)``, typed as Hydra's docs write a search space; ``b`` in
    ``tracking.tags.note=a b``) belongs to the one before it. Split at every space, that form
    was a parse error. Quotes are Hydra's and stay (``_words``): a quoted value is one string
    to Hydra, which a value with "=", "," or a letter outside ASCII needs.
    """
    expanded: list[str] = []
    for argument in arguments:
        if not any(space in argument for space in " \t\n"):
            expanded += [argument] if argument else []
            continue
        pieces: list[str] = []
        for piece in _words(argument):
            starts = _OVERRIDE_START.match(piece) or _FLAG.fullmatch(piece)
            if pieces and not starts and not _FLAG.fullmatch(pieces[-1]):
                pieces[-1] += f" {piece}"
            else:
                pieces.append(piece)
        expanded += pieces
    return expanded


def _words(argument: str) -> list[str]:
    """``argument`` cut at whitespace outside quotes, every character kept, as Hydra's override
    grammar reads them: a quote opens a string that only the same quote closes, and a backslash
    escapes the character after it (``\\ `` is a space inside a value).

    ``shlex.split`` took the quotes away: ``tracking.run_name='x=y é'`` reached Hydra as
    ``x=y é``, a parse error, and ``'ridge, tuned'`` as a sweep ("Ambiguous value ... quote the
    value"); an unclosed quote was its ValueError, a traceback. An unclosed quote now stays in
    its word, for Hydra to refuse in one line.
    """
    words: list[str] = []
    word: list[str] = []
    quote: str | None = None
    escaped = False
    for char in argument:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char.isspace():
            if word:
                words.append("".join(word))
                word = []
            continue
        word.append(char)
    if word:
        words.append("".join(word))
    return words


class CommandParser(argparse.ArgumentParser):
    """The argparse commands' parser (predict, serve, runs, compare): a bad argument is one
    line, ``error: ...``, exit 2, as a Hydra app's is, not argparse's usage block above it
    (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        line = f"error: {redact_text(message)} (see {self.prog} --help)"
        self.exit(USER_ERROR_STATUS, line + "\n")


def report(error: BaseException) -> int:
    """An argparse command's user error: one line, any secret in it hidden; its exit status."""
    print(f"error: {redact_text(str(error))}", file=sys.stderr, flush=True)
    return USER_ERROR_STATUS


def run(main: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` function with MLproject-style arguments expanded.

    A user error (a ``UserError``, or a config Hydra cannot compose: an unknown key, a value
    of the wrong type) prints one line and exits 2, never a traceback. Hydra would print its
    own shortened traceback for any exception, so it is asked to let them through
    (``HYDRA_FULL_ERROR``) and they are sorted here; bugs keep their full traceback.

    SIGTERM and SIGINT unwind the app (``pricer.interrupt``): its runs end KILLED, its worker
    processes stop, ``atexit`` handlers run, and the process exits with 128 + the signal
    number (143 for SIGTERM, 130 for SIGINT). Its last line says so, or, when every run had
    already ended FINISHED (a signal held back while the last one ended), that the work was
    done (``interrupt.outcome``).

    Each app imports its library call inside ``main``, after Hydra has composed the config:
    the library pulls in pandas, scikit-learn, matplotlib and MLflow (3.6-5.8 s here), while
    composing needs only ``pricer.configs`` and ``pricer.schemas``. So a typo is answered in
    0.5-0.8 s, and curation's spawned workers, which import the app's module again, start in
    0.7 s and 117 MiB instead of 4-5 s and 300 MiB (``python -m benchmarks.startup``).
    """
    try:
        require_config_dir()  # before Hydra, whose own message would not say what to do
        sys.argv = [sys.argv[0], *expand_overrides(sys.argv[1:])]
        refuse_two_modes(sys.argv[1:])
        refuse_another_apps_config(sys.argv[1:], _app_name(main))
        refuse_unquoted_letters(sys.argv[1:])
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
        interrupt.install()
        with _without_hydra_job_banner() as stderr:
            try:
                main()
            except SystemExit as stop:
                if stop.code != 1 or stderr.missing_package is None:
                    raise
                if stderr.missing_package:
                    raise ConfigError(stderr.missing_package) from None
                print("null")  # a key that is there, null: Hydra took it for no key
    except (UserError, HydraException, OmegaConfBaseException) as error:
        locate_interpolation(error, sys.argv[1:])
        said = redact_given(redact_text(record_ending(error)), sys.argv[1:])
        print(f"error: {said}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_STATUS)
    except Exception as error:
        line = _parameter_error(error) or _worker_died(error)
        # A bug too: its traceback on the terminal, its line in the record.
        record_ending(error if line is None else ConfigError(line))
        if line is None:
            raise
        print(f"error: {redact_text(ending() or '')}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_STATUS)
    except interrupt.Interrupted as stop:
        print(f"pricer: {interrupt.outcome(stop)}", file=sys.stderr, flush=True)
        interrupt.exit_process(stop.exit_code)


def refuse_two_modes(arguments: Sequence[str]) -> None:
    """Refuse (``ConfigError``) arguments that ask Hydra for two things at once.

    ``pricer train -m hparams_search=... --cfg job`` ended in Hydra's ValueError ("Only one of
    --run, --multirun, --cfg, --info and --shell_completion can be specified"), raised outside
    its error handling: a traceback. The arguments are read with Hydra's own parser, so what
    counts as each flag (``--cfg=job``, ``-cjob``) is what Hydra counts; one it cannot read is
    refused in its one line (``hydra_flags``). Printing a sweep's config is not offered: a sweep
    is many configs, which only its sweeper makes, and Hydra prints one.
    """
    args = hydra_flags(arguments)
    if args is None:
        return
    if args.help or args.hydra_help:  # Hydra answers those first, whatever else is given
        return
    given = [
        flag
        for flag, on in (
            ("-m (--multirun)", args.multirun),
            ("--run", args.run),
            ("--cfg", args.cfg is not None),
            ("--info", args.info is not None),
            ("--shell-completion", args.shell_completion),
        )
        if on
    ]
    if len(given) < 2:
        return
    advice = "give one of them"
    if "--cfg" in given and given[0].startswith("-m"):
        advice = "leave out -m to print the config (--cfg hydra: a sweep's sweeper and space)"
    raise ConfigError(f"{' and '.join(given)} cannot be combined: {advice}")


def refuse_unquoted_letters(arguments: Sequence[str]) -> None:
    """Refuse (``ConfigError``) an override Hydra cannot read because a letter outside ASCII is
    not quoted (``tracking.tags.note=café``), showing it quoted.

    Hydra's grammar reads such letters only inside quotes; its error was the lexer's
    ("LexerNoViableAltException: tracking.tags.note=café ^ See https://hydra.cc/..."), which
    did not say what to do. Quoted for the shell too, or the shell takes the quotes away.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = hydra_flags(arguments)
    if args is None:
        return
    for line in args.overrides:
        key, equals, value = line.partition("=")
        if not equals or value.isascii():
            continue  # the usual case: no parser built at start-up
        parser = OverridesParser.create()
        if _parses(parser, line):
            continue
        # Each value of a sweep's list its own string; a value holding a quote of one kind is
        # quoted with the other. A function's arguments (choice(café, thé)) are not guessed at.
        pieces = [f'"{piece}"' if "'" in piece else f"'{piece}'" for piece in value.split(",")]
        quoted = f"{key}={','.join(pieces)}"
        if "(" in value or not _parses(parser, quoted):
            raise ConfigError(
                f"{line}: Hydra reads a letter outside ASCII only inside quotes: quote the value"
            )
        plain = not any(char in quoted for char in '"$`\\!')
        shell = f'"{quoted}"' if plain else shlex.quote(quoted)
        raise ConfigError(
            f"{line}: Hydra reads a letter outside ASCII only inside quotes: give {quoted} "
            f"(on a shell's command line: {shell})"
        )


def _parses(parser: OverridesParser, line: str) -> bool:
    from hydra.errors import OverrideParseException

    try:
        parser.parse_overrides([line])
    except OverrideParseException:
        return False
    return True


def _app_name(main: Callable[[], object]) -> str:
    """The app a ``@hydra.main`` function is: its module's file (pricer/train.py: train),
    which ``python -m`` and ``pricer <app>`` both run as ``__main__``."""
    code = getattr(inspect.unwrap(main), "__code__", None)
    return Path(code.co_filename).stem if code is not None else ""


def refuse_another_apps_config(arguments: Sequence[str], app: str) -> None:
    """Refuse (``ConfigError``) ``-cn <name>`` naming the primary config of another command.

    ``python -m pricer.train -cn leaderboard`` composed the leaderboard's config for the train
    app, which then failed on a key it lacks ("Key 'family' is not in struct"), saying nothing
    of the config given. Each app's primary config is conf/<app>.yaml.
    """
    from pricer.console import HYDRA_APPS, OTHER_APPS

    args = hydra_flags(arguments)
    given = (args.config_name or "").removesuffix(".yaml") if args is not None else ""
    if not given or given == app or app not in HYDRA_APPS:
        return
    if given in HYDRA_APPS:
        whose = (
            f"the primary config of the {given} app (python -m pricer.{given}, or pricer {given})"
        )
    elif given in OTHER_APPS:
        whose = f"the config of pricer {given}"
    elif given == "optuna_search":
        whose = "the base every search shares (python -m pricer.train -m hparams_search=<family>)"
    else:
        return
    raise ConfigError(f"-cn {given} is {whose}, not the {app} app's: leave -cn out to run {app}")


def hydra_flags(arguments: Sequence[str]) -> argparse.Namespace | None:
    """The arguments as Hydra's own parser reads them; None for ``--version``, which Hydra
    answers. A flag it cannot read (``--cfg`` without its value, ``--info nosuch``, ``-x``) is
    refused (``ConfigError``) in argparse's own words: Hydra printed its usage, seven lines,
    above ``train.py: error: ...``."""
    from hydra._internal.utils import get_args_parser

    said = io.StringIO()
    try:
        # Nothing printed here: Hydra answers --version itself (it was said twice).
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
            return get_args_parser().parse_args(list(arguments))
    except SystemExit as stop:
        if not stop.code:
            return None
        last = said.getvalue().strip().splitlines()[-1:] or ["cannot read the arguments"]
        message = last[0].partition(": error: ")[2] or last[0]
        stray = message.removeprefix("unrecognized arguments: ").split()
        if message.startswith("unrecognized arguments: ") and all(
            _OVERRIDE_START.match(word) for word in stray
        ):
            # Hydra reads one run of overrides: "a=1 --cfg job b=2" left b=2 unread.
            raise ConfigError(
                f"{message}: Hydra reads the overrides as one group, before or after its flags "
                f"(--cfg, -m, ...), not on both sides: move {stray[0]} beside the others"
            ) from None
        raise ConfigError(f"{message} (see --help)") from None


def _parameter_error(error: BaseException) -> str | None:
    """The line for a learner's refusal of one of its parameters; None for any other error.

    scikit-learn's (``model.n_estimators=0`` for the random forest) names the parameter, its
    range and the value. XGBoost's ("value -3 for Parameter max_depth should be greater equal
    to 0", then the parameter's documentation) and LightGBM's checks of its config ("Check
    failed: (bagging_fraction) <= (1.0) at .../config_auto.cpp") keep their first line, without
    the C++ source. Known by name: importing the libraries here would slow every typo's answer.
    """
    kind = type(error)
    name, module, text = kind.__name__, kind.__module__, str(error).strip()
    if name == "InvalidParameterError" and module.startswith("sklearn."):
        return text
    first = text.splitlines()[0].strip() if text else ""
    if name == "XGBoostError" and module.startswith("xgboost.") and " for Parameter " in first:
        return f"xgboost: {first}"
    if name == "LightGBMError" and module.startswith("lightgbm.") and "/config" in first:
        return f"lightgbm: {first.split(' at ')[0].strip()}"
    return None


def _worker_died(error: BaseException) -> str | None:
    """The line for a launcher's worker process that died (joblib's loky pool: SIGKILL, the
    out-of-memory killer, a crash); None for any other error. It was joblib's traceback, read as
    a bug in pricer, with the exit codes on its last line."""
    if not (isinstance(error, BrokenExecutor) and type(error).__module__.startswith("joblib.")):
        return None
    codes = re.search(r"exit codes of the workers are (\{[^}]*\})", str(error))
    how = f"exit codes {codes.group(1)}" if codes else "it ended unexpectedly"
    killed = " (killed outright: the out-of-memory killer?)" if "SIGKILL" in how else ""
    return (
        f"a worker process of the sweep's launcher died ({how}){killed}: the launcher stopped "
        "its other workers, their trials failed, and the sweep stopped"
    )


class _BannerFilter:
    """stderr without Hydra's "Error executing job with overrides: [...]" line.

    Hydra writes that line straight to stderr before re-raising a job's exception; for a user
    error the one-line message says all, and a bug's traceback names the overrides anyway.
    Hydra's "package 'x' not found in config" (``--cfg job -p x``), which it follows with exit
    status 1, is kept back too (``missing_package``), for ``run`` to say in one line.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.missing_package: str | None = None  # its line; "" for a key that is null

    def write(self, text: str) -> int:
        if text.startswith(_HYDRA_JOB_BANNER):
            return len(text)
        missing = _MISSING_PACKAGE.fullmatch(text.strip())
        if missing:
            # Said now: Hydra forgets the config it composed once the app returns.
            self.missing_package = _missing_package(missing.group(1), sys.argv[1:])
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _missing_package(package: str, arguments: Sequence[str]) -> str:
    """The line for ``--cfg <part> -p <package>`` that Hydra did not find: the nearest key where
    the path stops matching; "" when the key is there, null (Hydra takes null for no key).
    Hydra said "package 'modle' not found in config" and exited 1, a bug's status.

    Called as Hydra says it, while Hydra still holds its search path: the config is composed
    again as it was for showing (Hydra keeps only its own part).
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    fallback = f"-p {package}: no such key in the config"
    args = hydra_flags(arguments)
    hydra = HydraConfig.instance().cfg
    if args is None or hydra is None or not GlobalHydra.instance().is_initialized():
        return fallback
    try:
        composed = GlobalHydra.instance().hydra.compose_config(  # type: ignore[union-attr]
            config_name=hydra.hydra.job.config_name,
            overrides=list(hydra.hydra.overrides.task),
            run_mode=RunMode.RUN,
        )
    except Exception:  # composed once already; whatever fails now, Hydra's own words stand
        return fallback
    # What each part of --cfg shows: the job's keys without hydra, hydra alone, or both.
    shown = [
        str(key)
        for key in composed
        if args.cfg == "all" or (key == "hydra") == (args.cfg == "hydra")
    ]
    node: object = composed
    where: list[str] = []
    for part in package.split("."):
        known = [str(key) for key in node] if isinstance(node, DictConfig) else []
        if not where:
            known = [key for key in known if key in shown]
        if part not in known:
            line = unknown_name("key", part, known, ".".join(where))
            return f"-p {package}: {line} (--cfg {args.cfg} shows the keys)"
        node = node._get_node(part)  # type: ignore[union-attr]
        where.append(part)
    return ""


@contextlib.contextmanager
def _without_hydra_job_banner() -> Iterator[_BannerFilter]:
    stream = sys.stderr
    filtered = _BannerFilter(stream)
    sys.stderr = filtered  # type: ignore[assignment]
    try:
        yield filtered
    finally:
        sys.stderr = stream


def run_command(
    main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None, name: str, stopped: str
) -> int:
    """An argparse command's ``main``, unwound by SIGTERM and Ctrl-C (``pricer.interrupt``)
    rather than ended where it stands; the last line says what ``stopped`` left behind."""
    interrupt.install()
    try:
        return main(argv)
    except interrupt.Interrupted as stop:
        print(f"pricer {name}: {stop}: {stopped}", file=sys.stderr)
        return stop.exit_code
