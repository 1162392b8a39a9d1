"""scikit-learn's tags say what a pricer takes: items of text, not a numeric 2-D array.

They said scikit-learn's defaults (numbers in a 2-D array, no missing values); each tag is
checked here against what the family really does with such input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from sklearn.utils import get_tags

from pricer.devtools.stub_server import StubServer
from pricer.models.base import Pricer
from pricer.models.ensemble import EnsemblePricer, LoggedPricer
from tests.conftest import compose_config
from tests.families import FAMILIES, LLM_FAMILIES, family_overrides
from tests.models.test_classical import catalogue


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    train, prices = catalogue(120, seed=1)
    test, _ = catalogue(8, seed=2)
    return train, prices, test


def family_pricer(family: str, stub: StubServer, folder: Path, test: pd.DataFrame) -> Pricer:
    return instantiate(compose_config("train", family_overrides(family, stub, folder, test)).model)


def with_gaps(items: pd.DataFrame) -> pd.DataFrame:
    """Items whose optional fields are missing (NaN or None) on every other row."""
    gaps = items.copy()
    for column in ("title", "category", "details"):
        gaps[column] = gaps[column].astype(object)
        gaps.loc[gaps.index[::2], column] = np.nan if column != "category" else None
    return gaps


@pytest.mark.parametrize("family", FAMILIES)
def test_tags_say_what_each_family_takes_and_it_does(
    family: str, shop, family_stub: StubServer, tmp_path: Path
) -> None:
    train, prices, test = shop
    tags = get_tags(family_pricer(family, family_stub, tmp_path, test))
    assert tags.estimator_type == "regressor" and tags.requires_fit
    assert tags.input_tags.string and not tags.input_tags.sparse
    assert not tags.input_tags.two_d_array  # a bare array's columns have no names
    assert tags.input_tags.one_d_array  # the stacks too: they leave out columns with no text
    assert tags.input_tags.allow_nan
    target = tags.target_tags
    assert target.required and target.positive_only and target.single_output
    assert not target.multi_output
    assert tags.non_deterministic == (family in LLM_FAMILIES)
    assert tags.regressor_tags.poor_score == (family == "constant")

    # allow_nan: missing optional fields, in training and in the items priced.
    fitted = family_pricer(family, family_stub, tmp_path, test).fit(with_gaps(train), prices)
    assert np.isfinite(fitted.predict(with_gaps(test))).all()
    # one_d_array: texts alone, to learn from and to price.
    texts = family_pricer(family, family_stub, tmp_path, test).fit(train["text"].tolist(), prices)
    assert np.isfinite(texts.predict(test["text"].tolist())).all()
    # not two_d_array: each row of a bare 2-D array was priced as one "text" of its cells.
    cells = test[["text", "title"]].to_numpy()
    with pytest.raises(ValueError, match=r"^items are a DataFrame .* not a 2-D array of shape"):
        fitted.predict(cells)


def test_a_logged_member_keeps_its_pricers_tags_and_needs_no_fit(
    shop, family_stub: StubServer, tmp_path: Path
) -> None:
    _, _, test = shop
    frontier = family_pricer("frontier", family_stub, tmp_path, test)
    member = LoggedPricer(pricer=frontier, source="models:/m-test")
    tags = get_tags(member)
    assert tags.non_deterministic and tags.input_tags.string
    assert not tags.requires_fit and not tags.target_tags.required  # fit changes nothing
    ridge = family_pricer("tfidf_ridge", family_stub, tmp_path, test)
    blend = EnsemblePricer({"ridge": ridge}, 0.3, log_space=True, random_state=0)
    assert not get_tags(blend).non_deterministic
    blend.set_params(members={"ridge": ridge, "llm": member})
    assert get_tags(blend).non_deterministic  # as repeatable as its least repeatable member
