"""The validation split a sweep ranks its trials on, carved out of the training items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricer.data.dataset import CuratedData, CurationReport
from pricer.errors import ConfigError
from pricer.evaluation import EvalSettings
from pricer.models.constant import ConstantPricer
from pricer.schemas import ValidationSettings
from pricer.validation import (
    OBJECTIVE,
    hold_out,
    sweep_objective,
    validation_scores,
)
from tests.conftest import compose_config, small_train_config

EVAL = EvalSettings.from_config(compose_config("train").eval)


def items(n: int, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": [f"item {i}" for i in range(offset, offset + n)],
            "text": [f"item number {i}" for i in range(offset, offset + n)],
            "category": ["Tools"] * n,
            "details": [""] * n,
            "price": np.arange(offset, offset + n, dtype=float) + 1.0,
        }
    )


def curated(n_train: int = 100, n_test: int = 20) -> CuratedData:
    report = CurationReport("synthetic", 200, {}, 150, 120, train=n_train, test=n_test)
    return CuratedData(items(n_train), items(n_test, offset=1000), items(5), report)


def test_settings_need_exactly_size_and_seed_as_integers() -> None:
    assert ValidationSettings.from_config({"size": 10, "seed": 1}) == ValidationSettings(10, 1)
    with pytest.raises(ValueError, match=r"missing mandatory value: seed"):
        ValidationSettings.from_config({"size": 10})
    with pytest.raises(ValueError, match=r"'0\.5'.*could not be converted to Integer.*size"):
        ValidationSettings.from_config({"size": 0.5, "seed": 1})
    with pytest.raises(ValueError, match=r"'True'.*could not be converted to Integer.*size"):
        ValidationSettings.from_config({"size": True, "seed": 1})
    with pytest.raises(ValueError, match=r"validation\.size must be >= 0"):
        ValidationSettings.from_config({"size": -1, "seed": 1})


def test_held_out_items_leave_training_and_the_test_items_are_untouched() -> None:
    data = curated()
    fit, validation = hold_out(data, ValidationSettings(size=30, seed=7))
    assert len(validation) == 30 and len(fit.train) == 70
    assert set(fit.train["title"]).isdisjoint(validation["title"])
    assert set(fit.train["title"]) | set(validation["title"]) == set(data.train["title"])
    assert fit.report.train == 70  # the run logs how many items it really trained on
    pd.testing.assert_frame_equal(fit.test, data.test)
    assert len(data.train) == 100  # the shared split is not modified


def test_hold_out_is_seeded() -> None:
    data = curated()
    first = hold_out(data, ValidationSettings(size=30, seed=7))[1]
    again = hold_out(data, ValidationSettings(size=30, seed=7))[1]
    other = hold_out(data, ValidationSettings(size=30, seed=8))[1]
    assert first["title"].tolist() == again["title"].tolist()
    assert first["title"].tolist() != other["title"].tolist()


def test_size_zero_holds_out_nothing_and_too_many_is_an_error() -> None:
    data = curated()
    fit, validation = hold_out(data, ValidationSettings(size=0, seed=7))
    assert fit is data and validation.empty
    with pytest.raises(ValueError, match=r"validation.size=100 leaves nothing to train on"):
        hold_out(data, ValidationSettings(size=100, seed=7))


def test_validation_scores_score_the_held_out_items_only() -> None:
    validation = items(4)  # prices 1, 2, 3, 4
    pricer = ConstantPricer(statistic="mean").fit(items(2), np.array([10.0, 10.0]))
    metrics = validation_scores(pricer, validation, EVAL)[0]
    assert metrics[OBJECTIVE] == pytest.approx(np.mean([9, 8, 7, 6]))
    assert metrics["validation.n"] == 4
    assert all(key.startswith("validation.") for key in metrics)
    assert validation_scores(pricer, validation.iloc[:0], EVAL)[0] == {}


def test_the_objective_is_the_validation_mae_never_a_test_metric() -> None:
    assert sweep_objective({"mae": 3.0, OBJECTIVE: 5.0}) == 5.0
    assert sweep_objective({"mae": 3.0}) is None


def test_like_test_holds_out_only_rows_drawn_like_the_test_set() -> None:
    # On data=real a sweep ranked trials on validation items mostly from the other real sets
    # (val mae $66.81 against a test mae of $108.43): not the distribution it is judged on.
    data = curated()
    flagged = np.zeros(100, dtype=bool)
    flagged[::4] = True  # 25 rows drawn like the test set
    data.train["drawn_like_test"] = flagged
    fit, validation = hold_out(data, ValidationSettings(size=20, seed=7, like_test=True))
    assert len(validation) == 20 and validation["drawn_like_test"].all()
    assert fit.train["drawn_like_test"].sum() == 5 and len(fit.train) == 80
    # Off (the default), the split is the one it always was.
    plain = hold_out(data, ValidationSettings(size=20, seed=7))[1]
    assert not plain["drawn_like_test"].all()
    with pytest.raises(ConfigError, match=r"only 25 training items are drawn like the test set"):
        hold_out(data, ValidationSettings(size=30, seed=7, like_test=True))


def test_each_figure_is_linked_to_the_items_it_was_measured_on(tracking_uri: str, tmp_path) -> None:
    # A trial's validation figures were linked to the test items' dataset; and every evaluation
    # set was named alike whatever its size, so the Models tab charted maes over 60 items and
    # over 250 as one.
    import mlflow

    from pricer.experiment import run_family

    run_family("constant", small_train_config("constant", tmp_path, "validation.size=100"))
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    [model] = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    linked = {metric.key: metric.dataset_name for metric in model.metrics}
    assert linked["mae"] == "synthetic-evaluation-50"
    assert linked[OBJECTIVE] == "synthetic-validation-100"
    contexts = {i.tags[0].value: i.dataset.name for i in run.inputs.dataset_inputs}
    assert contexts["validation"] == "synthetic-validation-100"
