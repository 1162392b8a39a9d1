"""The saving form of a fitted pricer: smaller, same prices once unpacked, undone afterwards."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from pricer.models.saving import PackedMapping, PackedStrings, estimators, saving_form, unpack
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


def test_a_vocabulary_round_trips_exactly_whatever_its_terms_hold() -> None:
    # numpy's fixed-width str arrays dropped trailing NULs ("ab\0" became "ab", one term lost,
    # the loaded model refused its own features) and sized every term as the longest.
    terms = ["ab", "ab\x00", "", "\x00", "naïve", "\ud800", "x" * 20_000, *map(str, range(50_000))]
    mapping = {term: i for i, term in enumerate(terms)}
    packed = PackedMapping(mapping)
    assert packed.unpack() == mapping
    assert packed.text.nbytes == sum(len(t.encode("utf-8", "surrogatepass")) for t in terms)
    texts = PackedStrings(terms[:7])
    assert texts.unpack() == terms[:7]


def test_a_vocabulary_saved_in_the_fixed_width_form_still_loads() -> None:
    old = PackedMapping.__new__(PackedMapping)  # as skops rebuilds one saved before 2026-12-06
    old.__dict__.update(keys=np.array(["drill", "saw"], dtype=str), values=np.array([1, 0]))
    assert old.unpack() == {"drill": 1, "saw": 0}
    old_texts = PackedStrings.__new__(PackedStrings)
    old_texts.__dict__.update(strings=np.array(["a drill", "a saw"], dtype=str))
    assert old_texts.unpack() == ["a drill", "a saw"]


def test_a_character_vocabulary_with_a_nul_prices_the_same_once_saved_and_loaded(
    tmp_path,
) -> None:
    from pricer.tracking.model_files import load_pricer, save_pricer
    from tests.models.test_stack import build as build_stack  # its character n-gram ridge

    train, prices = catalogue(240, seed=1)
    train.loc[:9, "text"] = train.loc[:9, "text"] + " ab\x00 ab"  # seen often enough to count
    pricer = build_stack().fit(train, prices)
    save_pricer(pricer, tmp_path / "pricer.skops")
    np.testing.assert_array_equal(
        load_pricer(tmp_path / "pricer.skops").predict(train.head(5)), pricer.predict(train.head(5))
    )
