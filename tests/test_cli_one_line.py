"""pricer.cli.one_line: an error and its causes on one line, each said once."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError

from pricer.errors import locate_interpolation, one_line
from tests.conftest import compose_config


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


def test_a_bad_value_says_its_key_then_the_fault_without_omegaconfs_context() -> None:
    # It ended "... to Integer full_key: eval.size object_type=EvalSettings".
    error = _chain(
        "Error merging override eval.size=abc",
        "Value 'abc' of type 'str' could not be converted to Integer\n"
        "    full_key: eval.size\n    reference_type=None\n    object_type=EvalSettings",
    )
    assert (
        one_line(error) == "eval.size: Value 'abc' of type 'str' could not be converted to Integer"
    )


def test_a_failed_instantiation_says_the_targets_error_in_words() -> None:
    # It said "Error in call to target '...ModelCatalogue': CatalogueNotFound('...')".
    error = _chain(
        "Error in call to target 'pricer.models.llm.catalogue.ModelCatalogue':\n"
        "CatalogueNotFound('model catalogue not found: /x.yaml')\nfull_key: model.catalogue",
        "model catalogue not found: /x.yaml",
    )
    assert one_line(error) == "model.catalogue: model catalogue not found: /x.yaml"


def test_a_message_ending_in_a_full_stop_joins_its_cause_without_one() -> None:
    # The openai SDK's "Connection error." read "Connection error.: All connection attempts".
    error = _chain("cannot connect to http://x/v1: Connection error.", "All attempts failed")
    assert one_line(error) == "cannot connect to http://x/v1: Connection error: All attempts failed"


def test_an_interpolation_that_does_not_resolve_names_its_key() -> None:
    # models.linear.alpha=${nope} said "Interpolation key 'nope' not found": of which setting,
    # among a leaderboard's dozens, it did not say. OmegaConf keeps the key on the error only.
    config = OmegaConf.create({"models": {"linear": {"alpha": "${nope}"}}})
    with pytest.raises(InterpolationKeyError) as raised:
        OmegaConf.to_container(config, resolve=True)
    assert one_line(raised.value) == "models.linear.alpha: Interpolation key 'nope' not found"


@pytest.mark.parametrize(
    ("config", "overrides", "line"),
    [
        (
            "train",
            ["model=xgbost"],
            "unknown model option 'xgbost' (did you mean 'xgboost'?); model options: bow_linear,",
        ),
        ("leaderboard", ["data=syntetic"], "unknown data option 'syntetic' (did you mean"),
        ("train", ["hparams_search=nosuch"], "unknown hparams_search option 'nosuch': give "),
    ],
)
def test_a_missing_option_names_the_nearest_first(
    config: str, overrides: list[str], line: str
) -> None:
    # Hydra listed the group's 14 options in file order, the one meant somewhere among them.
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as raised:
        compose_config(config, overrides)
    assert one_line(raised.value).startswith(line)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["+model=linear"], "+model=linear adds a second model, which the config chooses already: "
         "give model=linear, without the +, to choose linear instead"),
        (["+data=real"], "+data=real adds a second data, which the config chooses already: "),
    ],
)  # fmt: skip
def test_a_group_chosen_twice_says_how_to_choose_another(overrides: list[str], line: str) -> None:
    # Hydra advised "use 'override model: linear'", a defaults list's syntax.
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as raised:
        compose_config("train", overrides)
    assert one_line(raised.value).startswith(line)


def test_an_interpolation_read_through_another_key_names_the_one_given() -> None:
    # data.name=${oops} failed as Hydra built the sweep callback, whose run name reads
    # ${data.name}: OmegaConf named no key, and the line said only "Interpolation key 'oops'".
    config = OmegaConf.create({"data": {"name": "${oops}"}, "callback": {"run": "${data.name}"}})
    with pytest.raises(InterpolationKeyError) as raised:
        OmegaConf.resolve(config.callback)
    given = ["model=constant", "data.name=${oops}", "tracking.tags.x=${oc.env:HOME}"]
    locate_interpolation(raised.value, given)
    assert one_line(raised.value) == "data.name: Interpolation key 'oops' not found"


@pytest.mark.parametrize(
    ("arguments", "expanded"),
    [
        (["a=1 b=2", ""], ["a=1", "b=2"]),  # mlflow run -P overrides="a=1 b=2", and ''
        (["model.alpha=interval(0.1, 1.0)"], ["model.alpha=interval(0.1, 1.0)"]),
        (
            ["model.alpha=tag(log, interval(0.05, 30)) model.c=choice(1, 2) ~seed"],
            ["model.alpha=tag(log, interval(0.05, 30))", "model.c=choice(1, 2)", "~seed"],
        ),
        (
            ["+model@models.x=linear hydra/sweeper/sampler=grid"],
            ["+model@models.x=linear", "hydra/sweeper/sampler=grid"],
        ),
        # Hydra's quotes stay, so a quoted value is one string to Hydra.
        (["tracking.run_name='x=y é' seed=3"], ["tracking.run_name='x=y é'", "seed=3"]),
        (['tracking.tags.note="ridge, tuned"'], ['tracking.tags.note="ridge, tuned"']),
        (["tracking.tags.note='it\\'s here' ~seed"], ["tracking.tags.note='it\\'s here'", "~seed"]),
        (["tracking.tags.note=a b"], ["tracking.tags.note=a b"]),  # Hydra reads "a b"
    ],
)
def test_overrides_are_split_between_overrides_never_inside_one(
    arguments: list[str], expanded: list[str]
) -> None:
    # A search space typed as Hydra's docs write it, "interval(0.1, 1.0)", was cut at its
    # space: "no viable alternative at input 'interval(0.1,'".
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from pricer.cli import expand_overrides

    assert expand_overrides(arguments) == expanded
    OverridesParser.create().parse_overrides(expanded)  # each one, Hydra's to read


@pytest.mark.parametrize(
    ("argument", "values"),
    [
        ("tracking.run_name='x=y é' seed=3", ["x=y é", 3]),
        ('tracking.tags.note="ridge, tuned"', ["ridge, tuned"]),
        ("tracking.tags.note='it\\'s here'", ["it's here"]),
    ],
)
def test_a_quoted_value_reaches_hydra_as_typed(argument: str, values: list[object]) -> None:
    # shlex took the quotes away: 'x=y é' was a parse error, and "ridge, tuned" a sweep
    # ("Ambiguous value ... quote the value", when it was quoted).
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from pricer.cli import expand_overrides

    parsed = OverridesParser.create().parse_overrides(expand_overrides([argument]))
    assert [override.value() for override in parsed] == values


def test_hydras_flags_among_overrides_stay_flags() -> None:
    from pricer.cli import expand_overrides

    assert expand_overrides(["seed=3 --cfg job", "-m model.alpha=1,2"]) == [
        "seed=3",
        "--cfg",
        "job",
        "-m",
        "model.alpha=1,2",
    ]
