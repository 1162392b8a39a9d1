"""Every family refuses training prices that are no prices, with the same one line.

The constant family learned a NaN (or infinite) price and priced every item with it; the LLM
families took them too (retrieval showed the model an infinite neighbour price); the pipeline
families said "Input y contains NaN" of a negative price (after log1p).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from pricer.devtools.stub_server import StubServer
from pricer.errors import UserError
from pricer.models.base import UnusablePrices
from pricer.models.constant import ConstantPricer
from tests.conftest import compose_config
from tests.families import FAMILIES, family_overrides
from tests.models.test_classical import catalogue

BAD = {"nan": (np.nan, "row 3: no price (NaN)"), "inf": (np.inf, "row 3: price inf")}
BAD["negative"] = (-5.0, "row 3: price -5 below 0")


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    train, prices = catalogue(60, seed=1)
    test, _ = catalogue(6, seed=2)
    return train, prices, test


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_refuses_a_price_that_is_no_price(
    family: str, bad: str, shop, family_stub: StubServer, tmp_path: Path
) -> None:
    train, prices, test = shop
    value, named = BAD[bad]
    y = np.array(prices, dtype=float)
    y[3] = value
    cfg = compose_config("train", family_overrides(family, family_stub, tmp_path, test))
    with pytest.raises(UnusablePrices) as error:
        instantiate(cfg.model).fit(train, pd.Series(y, index=train.index + 100))  # rows, not labels
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, UserError)
    assert message.startswith(f"1 of {len(y)} training prices are unusable ({named})")


def test_a_constant_pricer_never_prices_with_a_nan_it_learned(shop) -> None:
    train, prices, test = shop
    y = np.array(prices, dtype=float)
    y[[0, 5]] = np.nan
    with pytest.raises(UnusablePrices, match=r"^2 of 60 .*row 0: no price \(NaN\); row 5: no"):
        ConstantPricer("mean").fit(train, y)
    with pytest.raises(UnusablePrices, match=r"^60 training items but 59 prices"):
        ConstantPricer("mean").fit(train, prices[:-1])
    y[[0, 5]] = 0.0  # a free item is a price
    assert np.isfinite(ConstantPricer("median").fit(train, y).predict(test)).all()
