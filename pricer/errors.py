"""The one base class for errors a user can act on, as opposed to bugs.

``pricer.cli.run`` prints a ``UserError`` as one line, ``error: <message>``, and exits 2; any
other exception is a bug and keeps its traceback. Raise a subclass (with a message that says
what is wrong and what to do) for bad input, missing keys or files, refused confirmations, a
decision that cannot be made, ...
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; its message is all they need to see."""


class BadData(UserError, ValueError):
    """Input data that cannot be read as it is meant (a column of the wrong kind)."""


class ConfigError(UserError, ValueError):
    """A setting does not fit: a key, a type or a range. The message names the setting.

    A ``ValueError`` too, so code (and scikit-learn's estimator checks) that expects one for a
    bad parameter still gets one.
    """
