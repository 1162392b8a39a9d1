"""Items without usable text (null, empty, only a number) are refused, never priced."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode

from pricer.models.base import UnusableItems, require_usable_text, usable_text_problems
from tests.serving.conftest import CHAMPION_URI

GOOD = "Cordless drill driver, 20V, two batteries, charger and case"


def test_problems_name_each_row_and_why() -> None:
    texts = [GOOD, "", None, "   \n", "12.5", "$ 19.99 - 2", np.nan, 42, "4K TV 55in", ["a", "b"]]
    assert usable_text_problems(pd.DataFrame({"text": texts})) == [
        "row 1: empty text",
        "row 2: no text (null)",
        "row 3: empty text",
        "row 4: text '12.5' has no words (only numbers or symbols)",
        "row 5: text '$ 19.99 - 2' has no words (only numbers or symbols)",
        "row 6: no text (null)",
        "row 7: text is a int (42), not words",
        "row 9: text is a list (['a', 'b']), not words",
    ]
    assert usable_text_problems([GOOD, "x"]) == []
    with pytest.raises(ValueError, match="need a 'text' column"):
        usable_text_problems(pd.DataFrame({"name": [GOOD]}))


def test_the_error_is_one_line_naming_the_rows_and_counting_the_rest() -> None:
    with pytest.raises(UnusableItems) as error:
        require_usable_text(pd.DataFrame({"text": [GOOD, *[""] * 14]}))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("14 of 15 items have no usable text (row 1: empty text; ")
    assert "row 10: empty text; and 4 more)" in message and "row 11" not in message
    assert error.value.rows == list(range(1, 15))
    require_usable_text(pd.DataFrame({"text": [GOOD]}))  # nothing to say


@pytest.mark.parametrize("bad", ["", "   ", "12.5", "1299"])
def test_the_logged_model_refuses_a_batch_with_unusable_text(champion_store: str, bad: str) -> None:
    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    assert np.isfinite(model.predict(pd.DataFrame({"text": [GOOD]}))).all()
    with pytest.raises(MlflowException) as refused:
        model.predict(pd.DataFrame({"text": [GOOD, bad, GOOD]}))
    assert refused.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)
    assert "1 of 3 items have no usable text (row 1: " in refused.value.message
