"""A key added at the root with + that no part of the app reads is refused before any run."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest
from hydra import initialize_config_dir

from pricer.configs import check_added_keys
from pricer.errors import ConfigError
from pricer.paths import CONFIG_DIR
from tests.apps.test_startup import APPS
from tests.apps.test_user_errors import the_error_line
from tests.conftest import multirun_config
from tests.e2e.conftest import pricer_app, run_cli


def check(*task: str) -> None:
    """``check_added_keys`` on ``pricer train <task>`` as Hydra hands it to a callback, with
    the Hydra that composed it still there (a forced key is judged by composing again)."""
    config = multirun_config(list(task), list(task))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        check_added_keys(config)


@pytest.mark.parametrize(
    ("task", "said"),
    [
        (["+seeed=3"], r"^unknown key 'seeed' \(did you mean 'seed'\?\): \+seeed=\.\.\. adds"),
        (["+modle.alpha=1"], r"^unknown key 'modle' \(did you mean 'model'\?\)"),
        (["+modle={alpha: 1}"], r"^unknown key 'modle' "),
        (["+probe.first=1", "+probe.second=two"], r"^unknown key 'probe' \(known: "),
        (["+seeed=${oc.env:PRICER_TEST_UNSET}"], r"^unknown key 'seeed' "),
        # ++ sets a key there or not: in the composed config ++seeed=3 looks like ++seed=3.
        (["++seeed=3"], r"^unknown key 'seeed' \(did you mean 'seed'\?\): \+\+seeed=\.\.\. adds"),
        (["++modle.alpha=1"], r"^unknown key 'modle' \(did you mean 'model'\?\): \+\+modle\.alpha"),
        (["seed=4", "++seed=5", "++probe=1"], r"^unknown key 'probe' \(known: "),
        # A second model under a package of its own: the run trained the first and logged the
        # second's settings as its params.
        (
            ["+model@extra=constant"],
            r"^unknown key 'extra' \(known: .*\): \+model@extra=\.\.\. adds",
        ),
        (
            ["+model@modle=linear"],
            r"^unknown key 'modle' \(did you mean 'model'\?\): \+model@modle",
        ),
    ],
)
def test_a_key_added_at_the_root_is_refused(task: list[str], said: str) -> None:
    # Hydra adds whatever + names: the run went on with the defaults and recorded the typo.
    with pytest.raises(ConfigError, match=said):
        check(*task)


@pytest.mark.parametrize(
    "task",
    [
        [],
        ["seed=3"],
        ["+tracking.tags.note=x"],  # inside a node that is there: that node's to judge
        ["model=ensemble", "+model.members.best._target_=pricer.tracking.model.logged_pricer"],
        ["+tradeoff=default"],  # a config group's option
        ["model=ensemble", "+model@model.members.bow=bow_linear"],  # into a node that is there
        ["+hydra.job.env_set.X=1", "++hydra.job.env_set.Y=2"],  # Hydra's own
        ["++seed=3"],  # overrides the key that is there
        ["model=svr", "++model.max_iter=500", "++tracking.tags.note=x"],  # in nodes there
        ["experiment=course_scale", "++curation.sample.max_per_slot=9"],
    ],
)
def test_keys_added_where_something_reads_them_pass(task: list[str]) -> None:
    check(*task)


@pytest.mark.e2e
@pytest.mark.parametrize("sign", ["+", "++"])
@pytest.mark.parametrize("app", APPS)
def test_every_app_refuses_a_key_added_at_its_root_before_any_run(
    app: str, sign: str, tracking_uri: str, tmp_path: Path
) -> None:
    result = run_cli(pricer_app(app, f"{sign}seeed=3", workdir=tmp_path), tracking_uri, tmp_path)
    error = the_error_line(result)
    said = rf"^error: unknown key 'seeed' .*: {re.escape(sign)}seeed=\.\.\. adds a key {app} never"
    assert re.match(said, error), error
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.e2e
def test_a_forced_key_that_is_there_is_set(tracking_uri: str, tmp_path: Path) -> None:
    command = pricer_app(
        "train",
        "model=constant",
        "++seed=7",
        "data.n_records=3000",
        "curation.split.test_size=200",
        "eval.size=50",
        f"curation.cache_dir={tmp_path / 'cache'}",
        workdir=tmp_path,
    )
    result = run_cli(command, tracking_uri, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.params["seed"] == "7"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "arguments",
    [
        ["train", "-m", "model=constant", "+probe=a,b"],
        ["train", "-m", "hparams_search=tfidf_ridge", "+seeed=2"],
        ["train", "-m", "model=constant", "++seeed=1,2"],
        ["train", "-m", "hparams_search=tfidf_ridge", "++probe=2"],
        ["leaderboard", "-m", "+seeed=1,2"],
    ],
)
def test_a_sweep_refuses_a_key_added_at_the_root_before_its_parent_run(
    arguments: list[str], tracking_uri: str, tmp_path: Path
) -> None:
    app, *overrides = arguments
    command = [*pricer_app(app, *overrides, workdir=tmp_path), f"hydra.sweep.dir={tmp_path}/m"]
    error = the_error_line(run_cli(command, tracking_uri, tmp_path))
    assert re.match(r"^error: unknown key '(probe|seeed)' ", error), error
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize(
    ("task", "said"),
    [
        (["model=xgbost,svr"], r"^unknown model option 'xgbost' \(did you mean 'xgboost'\?\); "),
        (["model=constant", "data=synthetic,zzz"], r"^unknown data option 'zzz': give data=<one"),
    ],
)
def test_a_sweep_over_an_option_its_group_lacks_is_refused_as_it_starts(
    task: list[str], said: str
) -> None:
    # Hydra composes a trial's config only as it launches it: the sweep's parent run opened and
    # ended FAILED at the first trial.
    from pricer.configs import check_swept_options

    config = multirun_config([], task)
    fine = multirun_config([], ["model=xgboost,svr", "data=synthetic,real", "seed=1,2"])
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        with pytest.raises(ConfigError, match=said):
            check_swept_options(config)
        check_swept_options(fine)


@pytest.mark.parametrize("sweep", ["model.alpha=range(0,0)", "model.alpha=range(5,1)"])
def test_a_sweep_over_a_range_without_a_value_is_refused_as_it_starts(sweep: str) -> None:
    # Hydra launched no job, and the sweep's parent run ended FINISHED with no trial.
    from pricer.configs import check_empty_sweeps

    with pytest.raises(ConfigError, match=rf"^{re.escape(sweep)} sweeps no value: a range counts"):
        check_empty_sweeps(multirun_config(["model=linear"], ["model=linear", sweep]))
    check_empty_sweeps(multirun_config(["model=linear"], ["model.alpha=range(5,1,-1)"]))
