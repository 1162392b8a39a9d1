"""Retrieval: the TF-IDF neighbour index and the RAG prompt it feeds."""

from __future__ import annotations

import pandas as pd
import pytest

from pricer.data.dataset import CuratedData, CurationReport
from pricer.errors import ConfigError
from pricer.identity import comparable
from pricer.models.features import NoVocabulary
from pricer.models.llm.retrieval import NeighbourIndex
from pricer.schemas import ValidationSettings
from pricer.validation import hold_out


def index(k: int, **overrides: object) -> NeighbourIndex:
    settings = {
        "k": k,
        "max_features": 1000,
        "ngram_max": 2,
        "min_df": 1,
        "sublinear_tf": True,
        "max_chars": 60,
        "max_items": None,
        "random_state": 0,
    }
    return NeighbourIndex(**{**settings, **overrides})


def test_neighbours_are_the_most_similar_training_items_first() -> None:
    train = pd.DataFrame(
        {
            "text": [
                "steel claw hammer 16 oz",
                "rubber mallet",
                "usb c cable 2m",
                "steel framing hammer 22 oz",
            ]
        }
    )
    found = (
        index(k=2)
        .fit(train, [20.0, 9.0, 7.0, 35.0])
        .neighbours(pd.DataFrame({"text": ["claw hammer steel"]}))
    )
    assert [n.text for n in found[0]] == ["steel claw hammer 16 oz", "steel framing hammer 22 oz"]
    assert [n.price for n in found[0]] == [20.0, 35.0]
    assert found[0][0].similarity >= found[0][1].similarity


def test_max_items_caps_the_index_and_text_is_cut(make_items) -> None:
    train = make_items(50, seed=0)
    fitted = index(k=3, max_items=20, max_chars=10).fit(train, train["price"])
    assert len(fitted.texts_) == 20 and set(fitted.texts_) <= {t[:10] for t in train["text"]}
    assert all(len(text) <= 10 for text in fitted.texts_)


def test_rag_prompt_holds_k_training_neighbours_with_prices(
    make_pricer, make_items, load_prompt, stub
) -> None:
    train, test = make_items(40, seed=0), make_items(5, seed=1, start=1000)
    k = 3
    pricer = make_pricer(prompt=load_prompt("rag"), retrieval=index(k=k, max_chars=500))
    pricer.fit(train, train["price"])
    prices = pricer.predict(test)
    assert not pd.isna(prices).any()

    train_prices = dict(zip(train["text"], train["price"], strict=True))
    users = [
        next(m["content"] for m in r["messages"] if m["role"] == "user")
        for r in stub.state.chat_requests
    ]  # in arrival order, not item order
    assert sorted(text for user in users for text in test["text"] if user.endswith(text)) == sorted(
        test["text"]
    )  # each item priced once, itself last in its prompt
    for user in users:
        shown = [t for t in train["text"] if t in user]
        assert len(shown) == k
        for neighbour in shown:  # each example carries its own training price
            assert f"{neighbour}\nPrice is ${train_prices[neighbour]:.2f}" in user
        assert not [t for t in test["text"] if t in user and not user.endswith(t)]
    # The index holds training items only: no test text ever got in.
    assert set(pricer.index_.texts_) <= set(train["text"])
    assert not set(pricer.index_.texts_) & set(test["text"])


def test_retrieval_settings_are_params_and_the_original_is_untouched(make_pricer, make_items):
    train = make_items(10, seed=0)
    retrieval = index(k=2)
    pricer = make_pricer(prompt=_rag_prompt(), retrieval=retrieval).fit(train, train["price"])
    assert pricer.get_params()["retrieval__k"] == 2
    assert not hasattr(retrieval, "nn_")  # fit worked on a clone (sklearn contract)


def _rag_prompt() -> dict[str, str | None]:
    return {
        "system": None,
        "user": "{examples}\n{text}",
        "prefill": None,
        "example": "{text}: {price}",
    }


def test_a_validation_item_is_never_shown_as_its_own_example(
    make_pricer, make_items, load_prompt
) -> None:
    # A held-out item whose twin (same text, other spacing or case) stayed in training was
    # retrieved as its own nearest example, with its price: the validation mae, a sweep's
    # objective, scored answers the prompt had given away.
    train = make_items(40, seed=0)
    twins = train.head(20).assign(text=lambda frame: frame["text"].str.upper() + "  ")
    report = CurationReport("items", 60, {}, 60, 60, train=60, test=5)
    data = CuratedData(
        pd.concat([train, twins], ignore_index=True),
        make_items(5, seed=1, start=1000),
        train[["price", "category"]],
        report,
    )
    fit, validation = hold_out(data, ValidationSettings(size=15, seed=3))
    held = set(comparable(validation["text"]))
    assert len(held & set(comparable(twins["text"]))) >= 3  # twins were split apart
    pricer = make_pricer(prompt=load_prompt("rag"), retrieval=index(k=3, max_chars=500))
    pricer.fit(fit.train, fit.train["price"])
    assert not held & set(comparable(pd.Series(pricer.index_.texts_)))
    for item, request in zip(validation["text"], pricer.requests(validation), strict=True):
        user = next(m["content"] for m in request["messages"] if m["role"] == "user")
        examples = user[: user.rindex(item)]
        assert item.strip().lower() not in examples.lower()


@pytest.mark.parametrize(
    "setting",
    [
        {"ngram_max": 0},  # scikit-learn's ValueError traceback
        {"max_items": 0},  # failed naming min_df, a setting nobody changed
        {"max_chars": 0},  # every example shown as a blank line with its price
        {"max_chars": -50},  # every example cut at its end
        {"k": 0},
        {"min_df": 0},
    ],
)
def test_retrieval_settings_below_one_are_one_line_naming_the_setting(make_items, setting) -> None:
    train = make_items(10, seed=0)
    (name,) = setting
    with pytest.raises(ConfigError, match=rf"^retrieval\.{name} must be a whole number >= 1, got"):
        index(**{"k": 3, **setting}).fit(train, train["price"])
    assert index(3, max_features=None, max_items=None).fit(train, train["price"]).texts_


def test_a_retrieval_min_df_that_leaves_no_word_is_one_line_naming_it(make_items) -> None:
    # min_df is cut to the item count, but below it no word may be in that many texts:
    # scikit-learn's "After pruning, no terms remain" was a traceback.
    train = make_items(10, seed=0).assign(text=[f"gizmo{i} widget{i}" for i in range(10)])
    with pytest.raises(
        NoVocabulary, match=r"^retrieval\.min_df=5 leaves the text vectoriser no word: "
    ):
        index(3, min_df=5).fit(train, train["price"])
