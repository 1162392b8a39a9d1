"""The human baseline: export the evaluation items, read a person's guesses back."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra.errors import HydraException

from pricer.data.dataset import load_curated
from pricer.errors import ConfigError, UserError
from pricer.evaluation import EvalSettings
from pricer.experiment import TooManyFailures, evaluation_items, run_family
from pricer.models.base import PriceReport
from pricer.models.human import FAILURE_REASONS, HumanPricer, item_id
from pricer.preparation import export_for_human
from pricer.tracking.model_files import load_pricer, save_pricer


@pytest.fixture
def export_args(item_files, tmp_path) -> list[str]:
    train, test = item_files
    return [
        "data=items",
        f"data.train_paths=[{train}]",
        f"data.test_paths=[{test}]",
        "eval.size=8",
        f"output_path={tmp_path / 'to_price.csv'}",
    ]


@pytest.fixture
def export_cfg(compose_conf, export_args):
    return compose_conf("human_export", export_args)


def test_export_says_where_the_guesses_go_and_what_to_run(export_cfg, capsys) -> None:
    # It said "save it as model=human's guesses_path", a config key, not a file.
    export_for_human(export_cfg)
    said = capsys.readouterr().out
    assert "save it as human/guesses.csv" in said
    assert said.rstrip().endswith("then: pricer train model=human data=items")


def test_export_then_guesses_round_trip(export_cfg, tmp_path) -> None:
    exported = pd.read_csv(export_for_human(export_cfg), dtype=str, keep_default_na=False)
    curated = load_curated(export_cfg.data, export_cfg.curation)
    items = evaluation_items(curated, EvalSettings.from_config(export_cfg.eval))
    # Exactly the evaluation items, in order, with no price given away.
    assert exported["text"].tolist() == items["text"].tolist()
    assert (exported["price"] == "").all()
    assert exported["id"].tolist() == [item_id(text) for text in items["text"]]

    guesses = exported.copy()  # the person prices all but the last item
    guesses["price"] = [f"${10 * (i + 1):,}" for i in range(len(guesses) - 1)] + [""]
    guesses.to_csv(tmp_path / "guesses.csv", index=False)
    pricer = HumanPricer(str(tmp_path / "guesses.csv")).fit(curated.train, curated.train.price)
    report = pricer.predict_report(items.sample(frac=1.0, random_state=0))  # any order
    by_text = dict(zip(items.sample(frac=1.0, random_state=0)["text"], report.prices, strict=True))
    for i, text in enumerate(items["text"]):
        if i == len(items) - 1:
            assert np.isnan(by_text[text])  # no guess: a failure, not a price
        else:
            assert by_text[text] == 10 * (i + 1)
    counts = {key: report.stats[f"human.{key}"] for key in ("guesses", "missing", "unreadable")}
    assert counts == {"guesses": 7.0, "missing": 1.0, "unreadable": 0.0}
    # No one said how long the person took: the cost of their time is unknown, not $0.
    assert math.isnan(report.stats["human.seconds_per_item"])
    assert math.isnan(report.stats["human.cost_per_1k_items_usd"])


def test_guesses_by_text_work_too(tmp_path) -> None:
    pd.DataFrame({"text": ["red mug", "blue lamp"], "price": ["12.5", "oops"]}).to_csv(
        tmp_path / "g.csv", index=False
    )
    pricer = HumanPricer(str(tmp_path / "g.csv")).fit(pd.DataFrame({"text": []}), [])
    prices = pricer.predict(pd.DataFrame({"text": ["blue lamp", "red mug", "green cup"]}))
    np.testing.assert_array_equal(np.isnan(prices), [True, False, True])
    assert prices[1] == 12.5


def test_an_item_priced_twice_differently_is_no_guess(tmp_path) -> None:
    # Two people's files joined: "red mug" was $500, the last row read, with no word of $12.
    texts = ["red mug", "blue lamp", "red mug", "blue lamp"]
    written = ["12", "30", "500", "30"]
    pd.DataFrame({"text": texts, "price": written}).to_csv(tmp_path / "g.csv", index=False)
    items = pd.DataFrame({"text": ["red mug", "blue lamp"]})
    report = (
        HumanPricer(str(tmp_path / "g.csv")).fit(items, np.full(2, 999.0)).predict_report(items)
    )
    assert np.isnan(report.prices[0]) and report.prices[1] == 30.0  # the same twice is one guess
    counts = {key: report.stats[f"human.{key}"] for key in ("guesses", "missing", "unreadable")}
    assert counts == {"guesses": 1.0, "missing": 1.0, "unreadable": 2.0}


def test_missing_or_malformed_guesses_fail_clearly(tmp_path) -> None:
    # User errors (one line, exit 2 from the apps): the person has a file to write or fix.
    with pytest.raises(UserError, match="human_export"):
        HumanPricer(str(tmp_path / "none.csv")).fit(pd.DataFrame({"text": []}), [])
    pd.DataFrame({"item": ["a"], "guess": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match="price column"):
        HumanPricer(str(tmp_path / "bad.csv")).fit(pd.DataFrame({"text": []}), [])


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", r"it is empty"),
        (b"\xff\xfe\x00p\x00r\x00i\x00c\x00e", r"it is not UTF-8 text"),
        (b'id,price\n"a,1\nb,2\n', r"it is not a CSV table"),
    ],
    ids=["empty", "not utf-8", "an unclosed quote"],
)
def test_a_guesses_file_that_is_no_table_is_one_line(tmp_path, content: bytes, why: str) -> None:
    # pandas' EmptyDataError, UnicodeDecodeError and ParserError, each a traceback.
    path = tmp_path / "guesses.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"^{path}: .*{why}"):
        HumanPricer(str(path)).fit(pd.DataFrame({"text": []}), [])


def test_ids_are_stable_hashes_of_the_text() -> None:
    assert item_id("red mug") == item_id("red mug") != item_id("red mug ")
    assert len(item_id("x")) == 16 and int(item_id("x"), 16) >= 0


def test_export_refuses_to_overwrite_prices_a_person_typed(export_cfg) -> None:
    # A person may fill in the exported file itself; exporting again wrote empty prices over
    # their work.
    path = export_for_human(export_cfg)
    export_for_human(export_cfg)  # nothing typed yet: exporting again is harmless
    typed = pd.read_csv(path, dtype=str, keep_default_na=False)
    typed.loc[:2, "price"] = ["12", "$30", "7.5"]
    typed.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"holds 3 prices .*overwrite=true"):
        export_for_human(export_cfg)
    assert pd.read_csv(path, dtype=str, keep_default_na=False).equals(typed)
    export_cfg.overwrite = True
    assert (pd.read_csv(export_for_human(export_cfg), dtype=str)["price"].isna()).all()


@pytest.mark.parametrize("word", ["no", "off"])
def test_overwrite_no_keeps_a_persons_prices(compose_conf, export_args, export_cfg, word) -> None:
    # Hydra passed "overwrite=no" through as the string "no", which read as true: a person's
    # typed prices were replaced by empty ones. Typed by pricer.schemas, it is false.
    path = export_for_human(export_cfg)
    typed = pd.read_csv(path, dtype=str, keep_default_na=False)
    typed.loc[:1, "price"] = ["12", "$30"]
    typed.to_csv(path, index=False)
    before = path.read_bytes()
    cfg = compose_conf("human_export", [*export_args, f"overwrite={word}"])
    assert cfg.overwrite is False
    with pytest.raises(UserError, match="2 prices a person typed"):
        export_for_human(cfg)
    assert path.read_bytes() == before


def test_an_overwrite_that_is_no_boolean_is_refused_while_composing(compose_conf) -> None:
    with pytest.raises(HydraException, match="overwrite"):
        compose_conf("human_export", ["overwrite=keep"])


def test_an_interrupted_export_leaves_the_old_file_whole(export_cfg, monkeypatch) -> None:
    path = export_for_human(export_cfg)
    before = path.read_bytes()

    def cut_short(self: pd.DataFrame, target: object, **kwargs: object) -> None:
        with open(target, "w", encoding="utf-8") as file:  # type: ignore[arg-type]
            file.write("id,text,pri")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", cut_short)
    with pytest.raises(KeyboardInterrupt):
        export_for_human(export_cfg)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def guesses_read(tmp_path: Path, written: list[str]) -> PriceReport:
    """How a guesses file holding ``written`` as its prices, one item each, is read."""
    texts = [f"item {i}" for i in range(len(written))]
    pd.DataFrame({"text": texts, "price": written}).to_csv(tmp_path / "guesses.csv", index=False)
    items = pd.DataFrame({"text": texts})
    pricer = HumanPricer(str(tmp_path / "guesses.csv")).fit(items, np.full(len(written), 999.0))
    return pricer.predict_report(items)


def test_guesses_that_are_no_price_are_missing_not_numbers(tmp_path) -> None:
    # "12,99" was read as $1,299, "-5" and "0" as prices, "1e9" as a billion (the run FINISHED
    # with mae $4,016,171), and "inf" crashed the evaluation with a traceback.
    report = guesses_read(tmp_path, ["12,99", "-5", "0", "1e9", "inf", "5000000", "$25", "1,299"])
    assert np.isnan(report.prices[:6]).all()
    assert report.prices[6:].tolist() == [25.0, 1299.0]
    counts = {key: report.stats[f"human.{key}"] for key in ("guesses", "missing", "unreadable")}
    assert counts == {"guesses": 2.0, "missing": 6.0, "unreadable": 6.0}


def test_a_price_with_a_european_thousands_group_is_unreadable_not_a_dollar(tmp_path) -> None:
    # "1.299" (1,299 written the European way, as "12,99" is 12.99) was read as $1.30: a
    # person's $1,299 guess for a TV recorded as an error of $1,297.
    prices = guesses_read(tmp_path, ["1.299", "$2.500", "45.99", "1,299"])
    assert np.isnan(prices.prices[:2]).all()
    assert prices.prices[2:].tolist() == [45.99, 1299.0]
    assert prices.stats["human.failures.unreadable"] == 2.0


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        # A person who kept their guesses in a column of their own, or next to notes.
        (lambda t: t.rename(columns={"price": "my guess"}), r"columns pricer did not write"),
        (lambda t: t.assign(notes="looked it up"), r"columns pricer did not write: notes"),
    ],
)
def test_export_refuses_to_overwrite_a_file_a_person_changed(export_cfg, edit, reason) -> None:
    # Only typed prices in a column named "price" were noticed: guesses in a renamed column,
    # or notes beside blank prices, were overwritten by empty prices.
    path = export_for_human(export_cfg)
    changed = edit(pd.read_csv(path, dtype=str, keep_default_na=False))
    changed.to_csv(path, index=False)
    before = path.read_bytes()
    with pytest.raises(UserError, match=reason + r".*overwrite=true"):
        export_for_human(export_cfg)
    assert path.read_bytes() == before


def test_export_refuses_to_overwrite_a_file_that_is_no_export(export_cfg) -> None:
    path = Path(export_cfg.output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not a table")  # a wrong output_path
    with pytest.raises(UserError, match=r"not an export pricer wrote.*overwrite=true"):
        export_for_human(export_cfg)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_persons_time_is_the_familys_cost_when_given(tmp_path) -> None:
    pd.DataFrame({"text": ["red mug"], "price": ["12.5"]}).to_csv(tmp_path / "g.csv", index=False)
    timed = HumanPricer(str(tmp_path / "g.csv"), seconds_per_item=45, hourly_usd=30.0)
    stats = timed.fit(pd.DataFrame({"text": []}), []).predict_report(["red mug"]).stats
    assert stats["human.seconds_per_item"] == 45.0
    assert stats["human.cost_per_1k_items_usd"] == pytest.approx(375.0)  # 12.5 hours at $30
    for bad in ({"seconds_per_item": 0}, {"hourly_usd": -3.0}, {"seconds_per_item": math.inf}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            HumanPricer(str(tmp_path / "g.csv"), **bad).fit(pd.DataFrame({"text": []}), [])


def test_a_run_failed_for_missing_guesses_says_why_in_its_error(
    compose_conf, export_args, export_cfg, tracking_uri, tmp_path
) -> None:
    # "human gave no price for 100.0% of the evaluation items (no reason reported; ...)": a
    # sheet for other items, prices left blank and prices typed with a decimal comma read
    # alike, the person told nothing of which to fix.
    exported = pd.read_csv(export_for_human(export_cfg), dtype=str, keep_default_na=False)
    sheet = exported.copy()
    sheet["price"] = ["12,99", "7,50", "3,10", "", "", "$25", "$30", "$45"]
    sheet.loc[5:6, "text"] = ["another item", "yet another"]  # rows of another export
    sheet.loc[5:6, "id"] = sheet.loc[5:6, "text"].map(item_id)
    sheet.to_csv(tmp_path / "guesses.csv", index=False)
    cfg = compose_conf(
        "train",
        [
            "model=human",
            "family=human",  # not ${hydra:...}: no Hydra app runs here
            *export_args[:4],
            f"model.guesses_path={tmp_path / 'guesses.csv'}",
            "tracking.log_model=false",
        ],
    )
    with pytest.raises(TooManyFailures) as error:
        run_family("human", cfg)
    reasons = "(unreadable 3, blank 2, not_in_sheet 2; eval.max_failure_rate=5.0%)"
    assert str(error.value) == f"human gave no price for 87.5% of the evaluation items {reasons}"
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.metrics["human.failures.not_in_sheet"] == 2


def test_a_row_whose_id_a_spreadsheet_mangled_is_found_by_its_text(tmp_path) -> None:
    # A spreadsheet saves an all-digit id as a number ("1.23457E+15") and may pad one with
    # spaces: those items had no guess, though each row's text still named its item.
    texts = ["red mug", "blue lamp", "green cup"]
    sheet = pd.DataFrame(
        {
            "id": ["1.23457E+15", f" {item_id('blue lamp')} ", item_id("green cup")],
            "text": texts,
            "price": ["12", "30", "7"],
        }
    )
    sheet.to_csv(tmp_path / "guesses.csv", index=False)
    items = pd.DataFrame({"text": texts})
    pricer = HumanPricer(str(tmp_path / "guesses.csv")).fit(items, np.full(3, 99.0))
    np.testing.assert_array_equal(pricer.predict(items), [12.0, 30.0, 7.0])


def test_a_sheet_whose_columns_were_sorted_apart_gives_no_guess_not_a_wrong_one(tmp_path) -> None:
    # Its texts sorted without their ids and prices: each row's id names one item and its
    # text another, and the id's price was taken for an item the person never read.
    texts = ["red mug", "blue lamp"]
    sheet = pd.DataFrame(
        {"id": [item_id(t) for t in texts], "text": texts[::-1], "price": ["12", "30"]}
    )
    sheet.to_csv(tmp_path / "guesses.csv", index=False)
    items = pd.DataFrame({"text": texts})
    report = HumanPricer(str(tmp_path / "guesses.csv")).fit(items, np.full(2, 99.0))
    report = report.predict_report(items)
    assert np.isnan(report.prices).all()
    assert report.stats["human.failures.unreadable"] == 2 and report.stats["human.unreadable"] == 2


def test_a_fitted_human_pricer_is_a_model_file_that_loads(tmp_path) -> None:
    # Its sheet's ids were kept as sets, which the safe loader refuses: every model=human run
    # with tracking.log_model (the default) FAILED with UnsafeModelFile.
    texts = ["red mug", "blue lamp", "green cup"]
    sheet = pd.DataFrame({"text": texts, "price": ["12", "", "12,99"]})
    sheet.to_csv(tmp_path / "guesses.csv", index=False)
    items = pd.DataFrame({"text": [*texts, "grey pot"]})
    pricer = HumanPricer(str(tmp_path / "guesses.csv")).fit(items, np.full(4, 99.0))
    save_pricer(pricer, tmp_path / "model")
    loaded = load_pricer(tmp_path / "model")
    stats = loaded.predict_report(items).stats
    reasons = {reason: stats[f"human.failures.{reason}"] for reason in FAILURE_REASONS}
    assert reasons == {"not_in_sheet": 1, "blank": 1, "unreadable": 1}


def test_a_sheet_whose_texts_were_cleared_is_read_by_its_ids(tmp_path) -> None:
    # Every row's blank text named the same item, priced many ways: each row's price was
    # counted unreadable beside the guess its id gave.
    texts = ["red mug", "blue lamp", "green cup"]
    sheet = pd.DataFrame({"id": [item_id(t) for t in texts], "text": "", "price": ["12", "30", ""]})
    sheet.to_csv(tmp_path / "guesses.csv", index=False)
    items = pd.DataFrame({"text": texts})
    report = HumanPricer(str(tmp_path / "guesses.csv")).fit(items, np.full(3, 99.0))
    report = report.predict_report(items)
    np.testing.assert_array_equal(report.prices[:2], [12.0, 30.0])
    assert report.stats["human.unreadable"] == 0 and report.stats["human.failures.blank"] == 1
