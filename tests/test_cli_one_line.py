"""pricer.cli.one_line: an error and its causes on one line, each said once."""

from __future__ import annotations

from pricer.cli import one_line


def _chain(*messages: str) -> Exception:
    """An exception whose causes are the following messages, outermost first."""
    error: Exception | None = None
    for message in reversed(messages):
        outer = ValueError(message)
        outer.__cause__ = error
        error = outer
    assert error is not None
    return error


def test_a_wrapper_and_its_cause_are_both_said() -> None:
    error = _chain("Error merging override eval.size=abc", "Value 'abc' is not an int\nkey: size")
    assert (
        one_line(error)
        == "Error merging override eval.size=abc: Value 'abc' is not an int key: size"
    )


def test_hydras_config_search_path_is_left_out() -> None:
    # model=xgbost: the available options, then three lines of where Hydra looked.
    error = _chain(
        "In 'train': Could not find 'model/xgbost'\n\nAvailable options in 'model':\n\txgboost\n"
        "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf\n\tprovider=main"
    )
    assert one_line(error) == (
        "In 'train': Could not find 'model/xgbost' Available options in 'model': xgboost"
    )


def test_a_cause_the_message_already_quotes_is_not_said_again() -> None:
    # data=amazon offline ended "...: [Errno -2] Name or service not known: [Errno -2] ...".
    errno = "[Errno -2] Name or service not known"
    error = _chain(
        f"could not load 'hf://x' (ConnectError: {errno}). Offline: data=real.", errno, errno
    )
    assert (
        one_line(error) == f"could not load 'hf://x' (ConnectError: {errno}). Offline: data=real."
    )
