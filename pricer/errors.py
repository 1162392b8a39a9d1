"""The one base class for errors a user can act on, as opposed to bugs, and their wording.

``pricer.cli.run`` prints a ``UserError`` as one line, ``error: <message>``, and exits 2; any
other exception is a bug and keeps its traceback. Raise a subclass (with a message that says
what is wrong and what to do) for bad input, missing keys or files, refused confirmations, a
decision that cannot be made, ... ``one_line`` words any error (Hydra's and OmegaConf's
included) as that one line; ``unknown_name`` words a name nobody defined.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    OmegaConfBaseException,
)

_SEARCH_PATH = "\nConfig search path:"
_CONTEXT_LINES = ("full_key:", "object_type=", "reference_type=")  # OmegaConf's, after the fault
_INSTANTIATE = "Error in call to target"  # Hydra's instantiate, around the target's own error
_MERGING = "Error merging override"  # Hydra's, around OmegaConf's error for one override
# SQLAlchemy's last line under a database's error (a store or study storage that cannot be
# opened): a link to its docs, not part of what went wrong.
_SQLALCHEMY = "(Background on this error at:"


# Exit status of a user error (bad input, a missing key or file): 2, as argparse uses; a bug
# exits 1 with its traceback.
USER_ERROR_STATUS = 2

_ending: str | None = None  # why this process is ending, for runs closed at exit


def record_ending(error: BaseException) -> str:
    """Word the error that ends this process as one line, and keep it: a run closed by an exit
    handler (a sweep's parent) records it rather than a guess. Returns the line."""
    global _ending
    _ending = one_line(error)
    return _ending


def ending() -> str | None:
    """The line ``record_ending`` kept, if the process is ending on an error."""
    return _ending


class UserError(Exception):
    """Something the user can fix; its message is all they need to see."""


class BadData(UserError, ValueError):
    """Input data that cannot be read as it is meant (a column of the wrong kind)."""


class ConfigError(UserError, ValueError):
    """A setting does not fit: a key, a type or a range. The message names the setting.

    A ``ValueError`` too, so code (and scikit-learn's estimator checks) that expects one for a
    bad parameter still gets one.
    """


def nearest(name: str, known: Iterable[object]) -> list[str]:
    """The one or two known names closest to ``name`` (case aside: ``c`` finds ``C``)."""
    by_lower = {str(known_name).lower(): str(known_name) for known_name in known}
    return [by_lower[near] for near in difflib.get_close_matches(name.lower(), by_lower, n=2)]


def unknown_name(what: str, name: str, known: Iterable[object], where: str = "") -> str:
    """ "unknown key 'model.n_estimator' (did you mean 'model.n_estimators'?)".

    ``what`` is the kind of name (key, app), ``where`` the node it was looked up in. The
    nearest known names are offered when one is close; else every known name is listed (up
    to 12), so the message always says what would be right.
    """
    names = sorted(str(known_name) for known_name in known if not str(known_name).startswith("_"))
    full = f"{where}.{name}" if where else name
    close = nearest(name, names)
    if close:
        offered = " or ".join(f"'{where}.{near}'" if where else f"'{near}'" for near in close)
        return f"unknown {what} '{full}' (did you mean {offered}?)"
    if not names:
        return f"unknown {what} '{full}'"
    listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"unknown {what} '{full}' ({f'{where} has' if where else 'known'}: {listed})"


def locate_interpolation(error: BaseException, given: Sequence[str]) -> None:
    """Name the key of an interpolation that fails (``error.full_key``) when OmegaConf did
    not and the command line says it: the one override whose value interpolates.

    An interpolation resolved through another node (``data.name=${oops}``, read by the sweep
    callback's run name as Hydra builds its callbacks) fails with the key unset: the line said
    "Interpolation key 'oops' not found", of which setting it did not say. Of several such
    overrides, the ones quoting the name the message quotes; none found, nothing is named.
    """
    if not isinstance(error, InterpolationResolutionError) or error.full_key:
        return
    interpolating: dict[str, str] = {}
    for line in given:
        key, equals, value = line.partition("=")
        if equals and "${" in value and not key.startswith("-"):
            interpolating[key.lstrip("+~").partition("@")[0]] = value
    quoted = re.search(r"'([^']+)'", str(error))
    if quoted and len(interpolating) > 1:
        interpolating = {
            key: value for key, value in interpolating.items() if quoted.group(1) in value
        }
    if len(interpolating) == 1:
        error.full_key = next(iter(interpolating))


def one_line(error: BaseException) -> str:
    """The error's message with its lines joined (Hydra's messages span several).

    Hydra wraps what went wrong around its cause; the line says the key, then the fault
    ("eval.size: Value 'abc' ... could not be converted to Integer", "model.catalogue: model
    catalogue not found: ..."). A cause the message already quotes is not said again ("could
    not load ... (ConnectError: [Errno -2] ...)" ended with the errno twice). An override of a
    key the config lacks says which keys are near instead.
    """
    typo = _override_typo(error) or _missing_option(error) or _chosen_twice(error)
    if typo is not None:
        return typo
    # An interpolation that does not resolve ("Interpolation key 'nope' not found") keeps its
    # key on the error only, not in the message: said first, as for a bad value.
    located = (
        getattr(error, "full_key", None) if isinstance(error, OmegaConfBaseException) else None
    )
    messages: list[str] = []
    key = ""  # the config key OmegaConf names (full_key:), at whatever depth
    while error is not None and len(messages) < 3:
        # Hydra closes a missing-option error with its config search path: three lines of
        # where it looked, after the message that says what is available.
        text = str(error).split(_SEARCH_PATH)[0]
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        # OmegaConf's context lines (full_key: eval.size, object_type=EvalSettings) repeat
        # the key the message names; the key of a failed instantiation is kept, as its prefix.
        keys = [line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")]
        key = key or (keys[0] if keys else "")
        lines = [line for line in lines if not line.startswith((*_CONTEXT_LINES, _SQLALCHEMY))]
        if lines and lines[0].startswith(_INSTANTIATE) and error.__cause__ is not None:
            # "Error in call to target 'X': ErrorType('...')": the cause says it in words.
            cause = one_line(error.__cause__)
            messages.append(f"{key}: {cause}" if key else cause)
            break
        message = " ".join(lines) or type(error).__name__
        if not any(message in said for said in messages):
            messages.append(message)
        error = error.__cause__
    if len(messages) > 1 and messages[0].startswith(_MERGING) and key:
        # "Error merging override eval.size=abc: Value 'abc' ...": the key, then the fault.
        messages = [key, *messages[1:]]
    if located and not any(str(located) in message for message in messages):
        messages = [str(located), *messages]
    # "Connection error." then its cause: no ".:" between them.
    return ": ".join([*(message.rstrip(".") for message in messages[:-1]), messages[-1]])


def _missing_option(error: BaseException) -> str | None:
    """For ``model=xgbost``: the option that is not there, the nearest ones first, then the
    group's options; else None.

    Hydra's message listed every option of the group in file order (14 for ``model``), the one
    meant somewhere among them.
    """
    if not (isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file):
        return None
    group, _, name = str(error.missing_cfg_file).rpartition("/")
    if not group:
        return None
    return unknown_option(group, name, error.options)


def _chosen_twice(error: BaseException) -> str | None:
    """For ``+model=linear``, a group the config chooses already: how to choose another; else
    None. Hydra's advice, "use 'override model: linear'", is a defaults list's syntax, which
    no command line takes."""
    said = re.fullmatch(
        r"Multiple values for (\S+)\. To override a value use 'override \1: (.+)'", str(error)
    )
    if not isinstance(error, HydraException) or said is None:
        return None
    group, option = said.groups()
    return (
        f"+{group}={option} adds a second {group}, which the config chooses already: "
        f"give {group}={option}, without the +, to choose {option} instead"
    )


def unknown_option(group: str, name: str, options: Iterable[object]) -> str:
    """ "unknown model option 'xgbost' (did you mean 'xgboost'?); model options: ..."."""
    options = sorted(str(option) for option in options)
    close = nearest(name, options)
    if not close:
        return f"unknown {group} option '{name}': give {group}=<one of {', '.join(options)}>"
    offered = " or ".join(f"'{near}'" for near in close)
    return (
        f"unknown {group} option '{name}' (did you mean {offered}?); "
        f"{group} options: {', '.join(options)}"
    )


def _override_typo(error: BaseException) -> str | None:
    """For ``model.n_estimator=300``: the unknown key and the nearest ones; else None.

    Hydra's own message advises ``+model.n_estimator=300`` ("to append to your config"), which
    on a family's config only fails later, at its constructor: a typo wants the right name.
    """
    cause = error.__cause__
    if not (
        isinstance(error, HydraException)
        and str(error).startswith("Could not override")
        and isinstance(cause, ConfigKeyError | ConfigAttributeError)
        and isinstance(cause.parent_node, DictConfig)
        and cause.key is not None
    ):
        return None
    full = str(cause.full_key or cause.key)
    where = full.rpartition(".")[0]
    if where and not len(cause.parent_node):
        # A node of the user's own keys (tracking.tags): "unknown key" alone, with none to
        # offer, left no way to set one; + adds it.
        return f"{where} has no key '{cause.key}' yet: add it with +{full}=..."
    return unknown_name("key", str(cause.key), cause.parent_node.keys(), where)
