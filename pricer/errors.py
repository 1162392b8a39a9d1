"""The one base class for errors a user can act on, as opposed to bugs.

``pricer.cli.run`` prints a ``UserError`` as one line, ``error: <message>``, and exits 2; any
other exception is a bug and keeps its traceback. Raise a subclass (with a message that says
what is wrong and what to do) for bad input, missing keys or files, refused confirmations, a
decision that cannot be made, ...
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
    listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    if not names:
        return f"unknown {what} '{full}'"
    return f"unknown {what} '{full}' ({f'{where} has' if where else 'known'}: {listed})"
