"""The saving form of a fitted pricer: smaller, same prices once unpacked, undone afterwards."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from pricer.models.saving import PackedMapping, estimators, saving_form, unpack
from tests.models.test_classical import build, catalogue


@pytest.mark.parametrize(
    ("family", "n_trees"), [("random_forest", 15), ("xgboost", 0), ("tfidf_ridge", 0)]
)
def test_saving_form_keeps_every_prediction_and_is_undone(family: str, n_trees: int) -> None:
    train, prices = catalogue(160, seed=1)
    test, _ = catalogue(40, seed=2)
    pricer = build(family).fit(train, prices)
    expected = pricer.predict(test)
    trees = [e.tree_ for e in estimators(pricer) if hasattr(e, "tree_")]
    assert len(trees) == n_trees
    importances = [tree.compute_feature_importances() for tree in trees]
    vectorizers = [
        e
        for e in estimators(pricer)
        if isinstance(e, CountVectorizer) and hasattr(e, "vocabulary_")
    ]
    vocabularies = [dict(v.vocabulary_) for v in vectorizers]
    assert vocabularies  # every family here reads words
    with saving_form(pricer) as saved:
        assert saved is pricer
        assert all(isinstance(v.vocabulary_, PackedMapping) for v in vectorizers)
        for tree in trees:
            assert not tree.impurity.any() and not tree.weighted_n_node_samples.any()
            internal = tree.children_left != -1
            assert not tree.value[internal].any() and tree.value[~internal].any()
        # What a load gives back: the saved form, unpacked.
        reloaded = unpack(copy.deepcopy(saved))
    np.testing.assert_array_equal(reloaded.predict(test), expected)
    np.testing.assert_array_equal(pricer.predict(test), expected)  # the original is restored
    assert [v.vocabulary_ for v in vectorizers] == vocabularies
    for tree, before in zip(trees, importances, strict=True):
        np.testing.assert_array_equal(tree.compute_feature_importances(), before)
