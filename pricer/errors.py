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


def unknown_key(key: str, known: Iterable[object], where: str = "") -> str:
    """ "unknown key 'model.n_estimator' (did you mean 'model.n_estimators'?)".

    The nearest known keys are offered when one is close; else every known key is listed (up
    to 12), so the message always says what would have been right.
    """
    names = sorted(str(name) for name in known if not str(name).startswith("_"))
    full = f"{where}.{key}" if where else key
    by_lower = {name.lower(): name for name in names}  # model.c for svr's C
    close = [
        by_lower[name] for name in difflib.get_close_matches(key.lower(), by_lower, n=2, cutoff=0.6)
    ]
    if close:
        offered = " or ".join(f"'{where}.{name}'" if where else f"'{name}'" for name in close)
        return f"unknown key '{full}' (did you mean {offered}?)"
    listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"unknown key '{full}'" + (f" ({where or 'the config'} has: {listed})" if names else "")
