"""What a saved model leaves out: training-only state, gone while saving, back afterwards.

xgboost: a family without scikit-learn trees is left as it is."""

from __future__ import annotations

import numpy as np
import pytest

from pricer.models.base import training_state_dropped
from tests.models.test_classical import build, catalogue


@pytest.mark.parametrize("family", ["random_forest", "xgboost"])
def test_dropping_training_state_keeps_every_prediction_and_is_undone(family: str) -> None:
    train, prices = catalogue(160, seed=1)
    test, _ = catalogue(40, seed=2)
    pricer = build(family).fit(train, prices)
    expected = pricer.predict(test)
    trees = _trees(pricer)
    assert len(trees) == {"random_forest": 15, "xgboost": 0}[family]
    importances = [tree.compute_feature_importances() for tree in trees]
    with training_state_dropped(pricer) as slim:
        assert slim is pricer
        np.testing.assert_array_equal(slim.predict(test), expected)
        for tree in trees:
            assert not tree.impurity.any() and not tree.weighted_n_node_samples.any()
            internal = tree.children_left != -1
            assert not tree.value[internal].any() and tree.value[~internal].any()
    np.testing.assert_array_equal(pricer.predict(test), expected)
    for tree, before in zip(trees, importances, strict=True):
        np.testing.assert_array_equal(tree.compute_feature_importances(), before)


def _trees(pricer: object) -> list:
    from pricer.models.base import _estimators

    return [e.tree_ for e in _estimators(pricer, set()) if hasattr(e, "tree_")]
