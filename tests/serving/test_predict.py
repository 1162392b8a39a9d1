"""python -m pricer.predict: the champion's prices for texts and for files of items."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricer.predict import main, write_prices
from tests.e2e.conftest import run_cli
from tests.serving.conftest import CHAMPION_URI, constant_champion

TEXTS = [
    "Cordless drill driver, 20V lithium battery, two batteries, charger and carrying case",
    "Replacement plastic cap for a water bottle",
]


@pytest.fixture(autouse=True)
def _global_tracking_uri_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """predict sets MLflow's global tracking URI: a test with a store of its own (tracking_uri)
    left it there, and the serving tests after it read the champion's store through it."""
    uris = mlflow.tracking._tracking_service.utils
    monkeypatch.setattr(uris, "_tracking_uri", uris._tracking_uri)


def champion_prices(items: pd.DataFrame) -> np.ndarray:
    return np.asarray(mlflow.pyfunc.load_model(CHAMPION_URI).predict(items), dtype=float)


ANSWERED_BY = "priced by pricer-synthetic version 1 (champion): tfidf_ridge, evaluated on synthetic"


@pytest.mark.e2e
def test_predict_prints_the_champions_price_per_text(champion_store: str, tmp_path: Path) -> None:
    result = run_cli([sys.executable, "-m", "pricer.predict", *TEXTS], champion_store, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("$") for line in lines)
    printed = [float(line.removeprefix("$").replace(",", "")) for line in lines]
    expected = champion_prices(pd.DataFrame({"text": TEXTS}))
    assert printed == pytest.approx(expected, abs=0.005)
    assert len(set(printed)) == 2  # a fitted model, not a constant
    # Which model answered, and on what it was evaluated: one line on stderr, no noise.
    [said] = [line for line in result.stderr.splitlines() if line.strip()]
    assert said.startswith(ANSWERED_BY) and "(50 test items, mae $" in said


def test_the_data_choice_names_the_champion(
    champion_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data", "synthetic", TEXTS[0]]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(ANSWERED_BY)
    assert main(["--data", "real", TEXTS[0]]) == 2  # no champion evaluated on real data
    err = capsys.readouterr().err
    assert err.startswith("error: no models:/pricer-real@champion") and err.count("\n") == 1


@pytest.mark.parametrize(
    "uri", ["models:/pricer-synthetic@champion", "models:/pricer-synthetic/latest"]
)
def test_a_model_uri_that_moves_is_described_by_the_version_that_answered(
    champion_store: str, capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    # "priced by model models:/pricer-synthetic@champion": which version, the line did not say.
    assert main(["--model-uri", uri, TEXTS[0]]) == 0
    said = capsys.readouterr().err
    assert said.startswith(
        f"priced by pricer-synthetic version 1 ({uri}): tfidf_ridge, evaluated on synthetic"
    )


def test_the_champion_of_data_named_by_its_user_is_found_by_that_name(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # promote data=items data.name=mine says "use it: pricer predict --data mine", which
    # answered "Could not find 'data/mine'": --data took only the names of conf/data's files.
    constant_champion(30.0, "pricer-mine")
    capsys.readouterr()  # what registering printed
    assert main(["--data", "mine", TEXTS[0]]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("priced by pricer-mine version 1 (champion)")
    assert captured.out == "$30.00\n"
    assert main(["--data", "theirs", TEXTS[0]]) == 2
    assert capsys.readouterr().err.startswith("error: no models:/pricer-theirs@champion in ")


def test_the_only_champion_is_found_among_more_models_than_a_page_holds(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A page of search_registered_models holds 100 models; the champion of a registry of a
    # team's 101 was "no registered pricer-<data> model has a champion".
    client = mlflow.MlflowClient()
    for n in range(100):
        client.create_registered_model(f"pricer-a{n:03d}")  # sorted before pricer-mine
    constant_champion(30.0, "pricer-mine")
    capsys.readouterr()
    assert main([TEXTS[0]]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("priced by pricer-mine version 1 (champion)")
    assert captured.out == "$30.00\n"


@pytest.mark.parametrize("name", ["${registry.prefix}", "a,b", "it's", "team [v2]"])
def test_a_model_name_is_taken_as_written(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # Passed to Hydra as an override, "${registry.prefix}" was "pricer", "a,b" was
    # "Ambiguous value for argument" and "it's" a LexerNoViableAltException.
    constant_champion(30.0, name)
    capsys.readouterr()
    assert main(["--model-name", name, TEXTS[0]]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"priced by {name} version 1 (champion)")
    assert captured.out == "$30.00\n"


def test_a_model_uri_outside_the_registry_prices_unchecked(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A runs:/ URI or a path with two slashes was taken for models:/<name>/<version> and
    # crashed in get_model_version (TypeError).
    info = constant_champion(20.0)
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    for uri in (f"runs:/{info.run_id}/pricer", str(folder)):
        capsys.readouterr()
        assert main(["--model-uri", uri, TEXTS[0]]) == 0
        captured = capsys.readouterr()
        assert captured.out == "$20.00\n"
        assert captured.err.startswith(f"priced by model {uri}")


@pytest.mark.parametrize(
    "damage",
    [
        "",  # emptied
        "flavors:\n  python_function: [\n",  # cut short: no YAML
        "- flavors\n",  # YAML, but no mapping
        "flavors: 5\n",
        "flavors:\n  python_function: 5\n",
        "flavors:\n  python_function: {}\n",  # no loader module
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.loaders.code_model\n"
        "    model_code_path: 7\n",
        "\udcff",  # not UTF-8
    ],
)
def test_a_damaged_mlmodel_file_is_one_line_not_a_traceback(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    # A model its digest does not cover (logged before pricer recorded one, or named by a
    # path or runs:/ URI) whose MLmodel was damaged ended in MLflow's YAML, KeyError or
    # TypeError traceback.
    info = constant_champion(20.0)
    folder = tmp_path / "copy"
    shutil.copytree(mlflow.artifacts.download_artifacts(info.model_uri), folder)
    (folder / "MLmodel").write_bytes(damage.encode("utf-8", "surrogateescape"))
    capsys.readouterr()
    assert main(["--model-uri", str(folder), TEXTS[0]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [said] = captured.err.splitlines()
    assert said.startswith(f"error: refusing {folder}: its MLmodel file is damaged (")


def test_file_mode_reads_jsonl_and_writes_csv_with_every_column(
    champion_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "items.jsonl"
    rows = [
        {"id": 7, "text": TEXTS[0], "category": "Tools_and_Home_Improvement"},
        {"id": 8, "text": TEXTS[1], "title": "Bottle cap", "details": {"Brand": "Acme"}},
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out" / "prices.csv"
    assert main(["--input", str(source), "--output", str(output)]) == 0
    written = pd.read_csv(output)
    assert written.columns.tolist() == [
        "id",
        "text",
        "category",
        "title",
        "details",
        "predicted_price",
    ]
    assert written["id"].tolist() == [7, 8]
    # The details as the JSON they were, not Python's repr "{'Brand': 'Acme'}".
    assert written["details"].tolist()[1] == '{"Brand": "Acme"}'
    expected = champion_prices(
        pd.DataFrame(
            {
                "text": TEXTS,
                "category": ["Tools_and_Home_Improvement", ""],
                "title": ["", "Bottle cap"],
                "details": ["", '{"Brand": "Acme"}'],
            }
        )
    )
    assert written["predicted_price"].tolist() == np.round(expected, 2).tolist()
    err = capsys.readouterr().err
    assert err.startswith(ANSWERED_BY) and "2 prices written" in err


def test_file_mode_reads_csv_and_writes_jsonl_or_stdout(
    champion_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "items.csv"
    # The items' own price (say, what a shop asks) stays; the prediction gets its own column.
    given = pd.DataFrame({"sku": ["a", "b"], "text": TEXTS, "price": ["19.99", "3.50"]})
    given.to_csv(source, index=False)
    output = tmp_path / "prices.jsonl"
    assert main(["-i", str(source), "-o", str(output)]) == 0
    written = pd.read_json(output, lines=True, dtype=False)
    assert written.columns.tolist() == ["sku", "text", "price", "predicted_price"]
    assert written["price"].tolist() == ["19.99", "3.50"]
    expected = champion_prices(pd.DataFrame({"text": TEXTS}))
    assert written["predicted_price"].tolist() == np.round(expected, 2).tolist()
    capsys.readouterr()
    assert main(["-i", str(source)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "sku,text,price,predicted_price"
    assert captured.err.startswith(ANSWERED_BY)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_file_mode_carries_every_value_of_a_jsonl_file_through_unchanged(
    champion_store: str, tmp_path: Path, suffix: str
) -> None:
    # Read by pandas, a column was typed as a whole: an id with a gap in its column became a
    # float, written as 1.23456789e+17 (JSONL, 10 digits kept) or 1.2345678901234568e+17 (CSV),
    # and every whole number of such a column as 7.0: ids no longer matched their items.
    rows = [
        {"id": 123456789012345678, "text": TEXTS[0], "weight": 0.123456789012345},
        {"text": TEXTS[1], "ean": "0012345"},
        {"id": 7, "text": TEXTS[0], "rating": 4, "weight": 2.5},
    ]
    source = tmp_path / "items.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / f"prices{suffix}"
    assert main(["--input", str(source), "--output", str(output)]) == 0
    if suffix == ".jsonl":
        written = [json.loads(line) for line in output.read_text().splitlines()]
        assert [{k: v for k, v in row.items() if v is not None} for row in written] == [
            {**row, "predicted_price": row_written["predicted_price"]}
            for row, row_written in zip(rows, written, strict=True)
        ]
    else:
        written = pd.read_csv(output, dtype=str, keep_default_na=False)
        assert written.columns.tolist() == [
            "id",
            "text",
            "weight",
            "ean",
            "rating",
            "predicted_price",
        ]
        assert written.drop(columns="predicted_price").to_dict(orient="records") == [
            {
                "id": "123456789012345678",
                "text": TEXTS[0],
                "weight": "0.123456789012345",
                "ean": "",
                "rating": "",
            },
            {"id": "", "text": TEXTS[1], "weight": "", "ean": "0012345", "rating": ""},
            {"id": "7", "text": TEXTS[0], "weight": "2.5", "ean": "", "rating": "4"},
        ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--alias", "nobody", "some text"], "no registered pricer-<data> model has a nobody"),
        (["--model-name", "absent", "some text"], "no models:/absent@champion"),
        (["--data", "nowhere", "some text"], "no models:/pricer-nowhere@champion"),
        (["some text", "  "], "text: 1 of 2 items have no usable text (item 2: empty text)"),
        # No words: the model would refuse them too, but as MLflow's exception (a traceback).
        (["12.5"], "text: 1 of 1 items have no usable text (item 1: text '12.5' has no words"),
        (
            ["--input", "{tmp}/blank.jsonl"],
            "blank.jsonl: 3 of 4 items have no usable text (item 2: empty text; "
            "item 3: no text (null); item 4: text '$$ 99' has no words",
        ),
        # A list as text was a ValueError traceback from pd.isna, exit 1.
        (["--input", "{tmp}/listed.jsonl"], "item 1: text is a list (['drill', 'saw'])"),
        # More fields than the header: the first was taken as the index and dropped, the
        # title priced as the text.
        (["--input", "{tmp}/ragged.csv"], "ragged.csv: not valid csv: Length of header"),
        # A line that is no object was a TypeError traceback from pandas, exit 1.
        (["--input", "{tmp}/null_line.jsonl"], "null_line.jsonl: not valid jsonl: a line is no"),
        # Nested deeper than Python's parser recurses: a RecursionError traceback, exit 1.
        (["--input", "{tmp}/deep.jsonl"], "deep.jsonl: not valid jsonl: line 2: nested deeper"),
        # Read as inf and written back as Infinity, which no JSON reader takes.
        (
            ["--input", "{tmp}/huge.jsonl", "--output", "{tmp}/huge_prices.jsonl"],
            "huge.jsonl: not valid jsonl: line 2: 1e400 is beyond the range of a float",
        ),
        # No JSON, taken by Python's reader: NaN came out as null, Infinity as Infinity.
        (["--input", "{tmp}/nan.jsonl"], "nan.jsonl: not valid jsonl: line 1: NaN is no JSON"),
        # No line named, and advice for Python code (sys.set_int_max_str_digits()).
        (["--input", "{tmp}/long.jsonl"], "line 1: a whole number of 5,000 digits is more than"),
        # The second text was renamed text.1 (CSV) or taken over the first (JSON), unsaid.
        (["--input", "{tmp}/twice.csv"], "twice.csv: not valid csv: the header names 'text' more"),
        (["--input", "{tmp}/twice.jsonl"], "line 2: an object names 'text' more than once"),
        # Half a surrogate pair (JSON may escape one; argv holds bytes that are no UTF-8 so):
        # a UnicodeEncodeError traceback from pandas, after the line naming the model.
        (["--input", "{tmp}/half.jsonl"], "line 1: \\ud800 is half of a character"),
        (["a drill \udcff"], "text 1 is not UTF-8"),
        (["--input", "{tmp}/priced.csv"], "has a 'predicted_price' column already"),
        (["--input", "{tmp}/missing.jsonl"], "input file not found"),
        # A folder was "input file not found" too.
        (["--input", "{tmp}/folder.csv"], "folder.csv is a folder: --input takes a JSONL or CSV"),
        (["--input", "{tmp}/items.txt"], "unknown file type"),
        (["--input", "{tmp}/no_text.csv"], "items need a 'text' column; found ['name']"),
        # An array read line by line said "items need a 'text' column; found [0]".
        (["--input", "{tmp}/array.json"], "array.json: a JSON array; JSON Lines expected"),
        (["--input", "{tmp}/empty.jsonl"], "empty.jsonl: no items (the file is empty)"),
        (["--input", "{tmp}/no_text.csv", "--output", "{tmp}/x.parquet"], "unknown output"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_status_2(
    champion_store: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    (tmp_path / "items.txt").write_text("text\nx\n")
    (tmp_path / "no_text.csv").write_text("name\nhammer\n")
    (tmp_path / "blank.jsonl").write_text(
        '{"text": "a hammer"}\n{"text": " "}\n{"text": null}\n{"text": "$$ 99"}\n'
    )
    (tmp_path / "listed.jsonl").write_text('{"text": ["drill", "saw"]}\n')
    (tmp_path / "ragged.csv").write_text("text,title\na hammer,Hammer,16 oz\n")
    (tmp_path / "null_line.jsonl").write_text('{"text": "a hammer"}\nnull\n')
    deep = '{"text": "a hammer", "details": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "deep.jsonl").write_text('{"text": "a hammer"}\n' + deep + "\n")
    (tmp_path / "huge.jsonl").write_text(
        '{"text": "a hammer"}\n{"text": "a saw", "details": {"Weight": 1e400}}\n'
    )
    (tmp_path / "nan.jsonl").write_text('{"text": "a hammer", "weight": NaN}\n')
    (tmp_path / "long.jsonl").write_text('{"text": "a hammer", "id": ' + "7" * 5000 + "}\n")
    (tmp_path / "twice.csv").write_text("text,title,text,,\na hammer,Hammer,a saw,,\n")
    (tmp_path / "twice.jsonl").write_text(
        '{"text": "a hammer"}\n{"text": "a hammer", "title": "Saw", "text": "a saw"}\n'
    )
    (tmp_path / "half.jsonl").write_text('{"text": "a hammer", "title": "Hammer \\ud800"}\n')
    (tmp_path / "priced.csv").write_text("text,predicted_price\na hammer,3\n")
    (tmp_path / "array.json").write_text('[{"text": "a hammer"}]\n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "folder.csv").mkdir()
    assert main([argument.format(tmp=tmp_path) for argument in arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_texts_and_a_file_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--input", "items.jsonl", "some text"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: give either item texts or --input FILE (not both) (see pricer predict --help)\n"
    )


def test_an_interrupted_write_leaves_the_previous_prices_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prices were written straight into the output: a kill or a full disk mid-write left a
    # truncated file that reads as fewer prices, and yesterday's file was gone.
    output = tmp_path / "prices.csv"
    write_prices(pd.DataFrame({"text": TEXTS, "predicted_price": [1.0, 2.0]}), output)
    before = output.read_bytes()

    def cut_short(self: pd.DataFrame, target: object, **kwargs: object) -> None:
        Path(str(target)).write_text("text,predicted_price\nCordless")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", cut_short)
    with pytest.raises(OSError, match="No space"):
        write_prices(pd.DataFrame({"text": TEXTS, "predicted_price": [3.0, 4.0]}), output)
    assert output.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["prices.csv"]


@pytest.mark.parametrize(
    ("where", "why"),
    [("taken.csv", "it is a folder"), ("afile/prices.csv", "{tmp}/afile is a file, not a folder")],
)
def test_an_output_that_cannot_be_written_is_one_line_before_pricing(
    champion_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, why: str
) -> None:
    # A folder in the way was an IsADirectoryError traceback, then a line with exit 1, found
    # only once every item was priced (paid calls, for an LLM champion); a file where a folder
    # should be said "File exists".
    source = tmp_path / "items.jsonl"
    source.write_text(json.dumps({"text": TEXTS[0]}) + "\n")
    (tmp_path / "taken.csv").mkdir()
    (tmp_path / "afile").write_text("notes\n")
    output = tmp_path / where
    assert main(["--input", str(source), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    # Nothing priced: no "priced by" line.
    assert err == f"error: cannot write {output}: {why.format(tmp=tmp_path)}\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile", "items.jsonl", "taken.csv"]
    assert (tmp_path / "afile").read_text() == "notes\n"


def test_written_prices_get_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    # The temporary file came from mkstemp, which makes it 0600: renamed into place, a price
    # list or an export shared with the team was readable by its writer only.
    plain = tmp_path / "plain.csv"
    plain.write_text("")
    output = tmp_path / "prices.csv"
    write_prices(pd.DataFrame({"text": TEXTS, "predicted_price": [1.0, 2.0]}), output)
    assert output.stat().st_mode == plain.stat().st_mode


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_an_input_saved_with_a_byte_order_mark_is_read(tmp_path: Path, suffix: str) -> None:
    # Windows editors save UTF-8 with a BOM: "not valid jsonl: Expected object or value at
    # position 0", and a CSV's first column read as '\ufefftext' ("items need a 'text' column").
    from pricer.predict import read_items

    path = tmp_path / f"items{suffix}"
    rows = pd.DataFrame({"text": TEXTS[:2], "sku": ["a1", "b2"]})
    body = (
        rows.to_json(orient="records", lines=True)
        if suffix == ".jsonl"
        else rows.to_csv(index=False)
    )
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    items = read_items(path)
    assert list(items.columns) == ["text", "sku"] and list(items["text"]) == TEXTS[:2]


def test_the_version_named_is_the_version_that_prices(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The alias was read to describe the model, then read again to load it: a promotion in
    # between had "priced by ... version 1" above version 2's prices.
    from pricer.models.constant import ConstantPricer
    from pricer.tracking import champions
    from pricer.tracking.model import log_pricer

    client = mlflow.MlflowClient()
    items = pd.DataFrame({"text": ["a drill", "a hammer"]})
    for price in (10.0, 99.0):
        with mlflow.start_run():
            info = log_pricer(ConstantPricer("mean").fit(items, np.array([price, price])))
        mlflow.register_model(info.model_uri, "pricer-synthetic")
    client.set_registered_model_alias("pricer-synthetic", "champion", "1")
    chosen = champions.choose_uri

    def then_promoted(*args: object) -> object:
        answer = chosen(*args)
        client.set_registered_model_alias("pricer-synthetic", "champion", "2")
        return answer

    monkeypatch.setattr(champions, "choose_uri", then_promoted)
    assert main(["--data", "synthetic", TEXTS[0]]) == 0
    captured = capsys.readouterr()
    assert "pricer-synthetic version 1 (champion)" in captured.err
    assert captured.out == "$10.00\n"


OLD_WRAPPER = """
import pickle

import mlflow


class PricerModel(mlflow.pyfunc.PythonModel):  # as models were logged before skops
    def load_context(self, context):
        with open(context.artifacts["pricer"], "rb") as file:
            self.pricer = pickle.load(file)

    def predict(self, context, model_input, params=None):
        return [1.0] * len(model_input)


mlflow.models.set_model(PricerModel())
"""


def test_a_pickled_champion_is_refused_while_mlflow_refuses_pickles(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Refused as an ensemble member, it was unpickled by predict whatever the setting said.
    from tests.serving.test_model_files import PicklePayload

    marker = tmp_path / "owned"
    (tmp_path / "old_wrapper.py").write_text(OLD_WRAPPER)
    (tmp_path / "pricer.pkl").write_bytes(pickle.dumps(12.5))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="pricer",
            python_model=str(tmp_path / "old_wrapper.py"),
            artifacts={"pricer": str(tmp_path / "pricer.pkl")},
        )
    logged = Path(mlflow.last_logged_model().artifact_location.removeprefix("file://"))
    (logged / "artifacts" / "pricer.pkl").write_bytes(pickle.dumps(PicklePayload(marker)))
    mlflow.register_model(info.model_uri, "pricer-synthetic")
    mlflow.MlflowClient().set_registered_model_alias("pricer-synthetic", "champion", "1")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    capsys.readouterr()  # what logging the model printed
    assert main(["--data", "synthetic", TEXTS[0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: models:/pricer-synthetic@champion is a pickled pricer")
    assert err.count("\n") == 1
    assert not marker.exists()


def test_bytecode_added_beside_a_champions_code_is_never_run(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The files digest leaves __pycache__ out, and Python ran an unchecked-hash .pyc there in
    # place of the checked pyfunc_model.py.
    import importlib.util
    import py_compile

    marker = tmp_path / "owned"
    info = constant_champion(20.0)
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    wrapper = folder / "pyfunc_model.py"
    foreign = tmp_path / "pyfunc_model.py"
    foreign.write_text(wrapper.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    py_compile.compile(
        str(foreign),
        cfile=importlib.util.cache_from_source(str(wrapper)),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    capsys.readouterr()
    assert main(["--data", "synthetic", TEXTS[0]]) == 0
    assert capsys.readouterr().out == "$20.00\n"
    assert not marker.exists()


def test_a_champion_whose_pricer_file_was_swapped_is_refused(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another valid pricer in place of the champion's file answered, "priced by" the champion.
    from pricer.models.constant import ConstantPricer
    from pricer.tracking.model import MODEL_FILE
    from pricer.tracking.model_files import save_pricer

    items = pd.DataFrame({"text": TEXTS})
    info = constant_champion(20.0)
    assert main(["--data", "synthetic", TEXTS[0]]) == 0
    assert capsys.readouterr().out == "$20.00\n"
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    save_pricer(ConstantPricer("mean").fit(items, np.array([999.0, 999.0])), tmp_path / "other")
    (folder / "artifacts" / MODEL_FILE).write_bytes((tmp_path / "other").read_bytes())
    assert main(["--data", "synthetic", TEXTS[0]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        "error: refusing models:/pricer-synthetic@champion: its files are not the ones logged as "
        f"{info.model_id}"
    )
    assert captured.err.count("\n") == 1


NEEDS_A_LIBRARY = """
import mlflow


class PricerModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import a_library_not_installed_here  # noqa: F401

    def predict(self, context, model_input, params=None):
        return [1.0] * len(model_input)


mlflow.models.set_model(PricerModel())
"""


def test_a_model_whose_library_is_missing_is_one_line(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A champion of a family whose library is not installed here was a ModuleNotFoundError
    # traceback, exit 1.
    (tmp_path / "wrapper.py").write_text(NEEDS_A_LIBRARY)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="pricer", python_model=str(tmp_path / "wrapper.py"))
    capsys.readouterr()
    assert main(["--model-uri", info.model_uri, TEXTS[0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot load {info.model_uri}: No module named 'a_library")
    assert err.count("\n") == 1


def test_a_model_in_an_artifact_store_whose_library_is_missing_is_one_line(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --model-uri s3://... without boto3 here was MLflow's ModuleNotFoundError traceback.
    for module in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    capsys.readouterr()
    assert main(["--model-uri", "s3://a-bucket/models/pricer", TEXTS[0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load s3://a-bucket/models/pricer: ")
    assert "botocore" in err and "install it, or predict elsewhere" in err
    assert err.count("\n") == 1


# predict, stalled where the test wants the signal to land: after its pricing has started
# (model_input) or after half the prices reached the hidden temporary file (to_csv). Sending
# SIGTERM "soon after priced by" instead raced the work: under the full suite's load predict
# once finished its 1.3 s of pricing and writing first, exit 0, and the test failed.
STALLED_PREDICT = """
import sys, time
import pandas as pd
from pricer import predict

def stall() -> None:
    print("stalled", file=sys.stderr, flush=True)
    time.sleep(120)

if sys.argv[1] == "pricing":
    real_input = predict.model_input
    def model_input(items):
        stall()
        return real_input(items)
    predict.model_input = model_input
else:
    real_to_csv = pd.DataFrame.to_csv
    def to_csv(self, path, **options):
        real_to_csv(self.iloc[: len(self) // 2], path, **options)
        stall()
    pd.DataFrame.to_csv = to_csv
sys.exit(predict.cli(sys.argv[2:]))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["pricing", "writing"])
def test_sigterm_while_pricing_a_file_leaves_the_output_as_it_was(
    champion_store: str, tmp_path: Path, where: str
) -> None:
    # Python's own SIGTERM ended the process where it stood: status -15, not a word, and a
    # write cut short left its hidden temporary file of partial prices beside the output.
    source = tmp_path / "items.jsonl"
    source.write_text((json.dumps({"text": TEXTS[0]}) + "\n") * 1000)
    output = tmp_path / "out" / "prices.csv"
    output.parent.mkdir()
    output.write_text("yesterday's prices\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion_store}
    arguments = ["--input", str(source), "-o", str(output)]
    command = [sys.executable, "-c", STALLED_PREDICT, where, *arguments]
    with subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True) as job:
        assert job.stderr is not None
        said = [job.stderr.readline(), job.stderr.readline()]
        assert said[0].startswith("priced by") and said[1] == "stalled\n", "".join(said)
        partial = [path for path in output.parent.iterdir() if path != output]
        if where == "writing":  # the state the signal must clean up: half the prices written
            [temporary] = partial
            assert len(temporary.read_text().splitlines()) == 1 + 500
        else:
            assert partial == []
        job.send_signal(signal.SIGTERM)
        rest = job.stderr.read()
    assert job.returncode == 143, rest
    assert rest.splitlines()[-1] == (
        "pricer predict: interrupted by SIGTERM: an --output file is as it was"
    )
    assert output.read_text() == "yesterday's prices\n"
    assert [path.name for path in output.parent.iterdir()] == ["prices.csv"]


@pytest.mark.e2e
def test_a_temporary_file_left_by_a_killed_predict_goes_with_the_next_write(
    champion_store: str, tmp_path: Path
) -> None:
    # SIGKILL runs no cleanup: its hidden file of half the prices stayed beside the output.
    source = tmp_path / "items.jsonl"
    source.write_text((json.dumps({"text": TEXTS[0]}) + "\n") * 1000)
    output = tmp_path / "out" / "prices.csv"
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion_store}
    arguments = ["--input", str(source), "-o", str(output)]
    command = [sys.executable, "-c", STALLED_PREDICT, "writing", *arguments]
    with subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True) as job:
        assert job.stderr is not None
        said = [job.stderr.readline(), job.stderr.readline()]
        assert said[1] == "stalled\n", "".join(said) + job.stderr.read()
        job.send_signal(signal.SIGKILL)
    [left] = list(output.parent.iterdir())
    assert left.name.startswith(".prices.csv.") and not output.exists()
    # A file of the same shape from a live process (this one) is another writer's: kept.
    live = output.with_name(f".prices.csv.{socket.gethostname()}.{os.getpid()}.abc123.tmp")
    live.write_text("being written\n")
    result = run_cli([sys.executable, "-m", "pricer.predict", *arguments], champion_store, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_csv(output)) == 1000
    assert sorted(path.name for path in output.parent.iterdir()) == [live.name, "prices.csv"]


def test_a_store_that_does_not_answer_is_one_line_not_promote_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A tracking server down: --data said "no models:/pricer-synthetic@champion ...: run
    # pricer promote data=synthetic first" of a champion that may well exist; without --data
    # it was an MlflowException traceback.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)
    for chosen in (["--data", "synthetic"], []):
        assert main([*chosen, TEXTS[0]]) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"error: cannot reach the tracking server at {server} (Connection refused)"
        )
        assert err.count("\n") == 1 and "promote" not in err


def test_an_unpriced_item_is_said_so_in_every_output(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pricer.predict

    constant_champion(20.0)
    loaded = pricer.predict.load_model

    def unpriced_second(cfg: object) -> object:  # an LLM that could not price the second item
        served = loaded(cfg)
        pricer_of_model = served.model.unwrap_python_model().pricer
        monkeypatch.setattr(pricer_of_model, "predict", lambda items: np.array([20.0, np.nan]))
        return served

    monkeypatch.setattr(pricer.predict, "load_model", unpriced_second)
    assert main(TEXTS) == 0
    assert capsys.readouterr().out.splitlines() == ["$20.00", "no price"]
    source = tmp_path / "items.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    assert main(["--input", str(source), "--output", str(tmp_path / "prices.jsonl")]) == 0
    lines = (tmp_path / "prices.jsonl").read_text().splitlines()
    assert [json.loads(line)["predicted_price"] for line in lines] == [20.0, None]
    assert main(["--input", str(source), "--output", str(tmp_path / "prices.csv")]) == 0
    written = pd.read_csv(tmp_path / "prices.csv", dtype=str, keep_default_na=False)
    assert written["predicted_price"].tolist() == ["20.0", ""]


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        # A ValueError traceback from MLflow's HTTP artifact repository.
        ("https://models.example/pricer", "a web address, which MLflow loads no model from"),
        # A dozen lines of dlopen failures, then an OSError traceback ("Unable to load libjvm").
        ("hdfs://namenode/models/pricer", "Hadoop's client library is needed"),
        # A socket.gaierror traceback.
        ("ftp://host.invalid/models/pricer", "cannot load ftp://host.invalid/models/pricer: "),
        # MLflow's advice on setting the tracking URI ran on for three more lines.
        ("mlflow-artifacts:/models/pricer", "the tracking URI must be a valid http or https URI"),
    ],
)
def test_a_model_uri_mlflow_cannot_load_from_is_one_line(
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uri: str,
    said: str,
) -> None:
    from pricer import serve

    for name in ("HADOOP_HOME", "ARROW_LIBHDFS_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--model-uri", uri, "Cordless drill"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot load {uri}") and said in err and err.count("\n") == 1
    with socket.socket() as probe:  # a free port, for serve to get as far as the model
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert serve.main(["--model-uri", uri, "--port", str(port)]) == 2
    assert capsys.readouterr().err == err


@pytest.mark.parametrize(
    ("options", "said"),
    [
        # --model-name won, --data ignored; a URI loaded itself, the rest ignored.
        (["--data", "real", "--model-name", "team"], "--data and --model-name both choose"),
        (["--model-uri", "models:/team/3", "--data", "real"], "--model-uri and --data both"),
        (["--model-name", "team", "--model-uri", "models:/team/3"], "--model-uri and --model-nam"),
        (["--model-uri", "models:/team/3", "--alias", "challenger"], "--model-uri and --alias"),
        # Taken as not given: the store's only champion answered.
        (["--model-uri", ""], "--model-uri is empty"),
        (["--data", " "], "--data is empty"),
    ],
)
def test_model_options_that_conflict_or_are_empty_are_refused_naming_them(
    capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    from pricer import serve

    for command, arguments in (
        ("predict", [*options, "Cordless drill"]),
        ("serve", [*options, "--port", "5001"]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(arguments) if command == "predict" else serve.main(arguments)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {said}") and err.endswith(f"(see pricer {command} --help)\n")


def test_a_model_whose_llm_key_is_not_set_here_is_refused_before_it_is_fetched(
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Served, it answered every request with a 400 that blamed the input, and a traceback.
    from pricer import serve
    from pricer.models.constant import ConstantPricer
    from pricer.tracking.model import log_pricer

    key = "PRICER_TEST_SERVED_KEY"
    monkeypatch.delenv(key, raising=False)
    items = pd.DataFrame({"text": ["Cordless drill", "Replacement cap"]})
    with mlflow.start_run():  # the record of an ensemble whose LLM member calls with that key
        mlflow.log_params({"model.members.llm.api_key_env": key, "model.api_key_env": "None"})
        info = log_pricer(ConstantPricer("mean").fit(items, np.array([20.0, 20.0])))
    mlflow.register_model(info.model_uri, "pricer-synthetic")
    mlflow.MlflowClient().set_registered_model_alias("pricer-synthetic", "champion", "1")
    capsys.readouterr()
    assert main(["--data", "synthetic", TEXTS[0]]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: cannot price with models:/pricer-synthetic@champion (its member members.llm): "
        f"environment variable {key} (named by api_key_env) is not set; export your API key "
        "there (local OpenAI-compatible servers accept any non-empty value)\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert serve.main(["--data", "synthetic", "--port", str(port)]) == 2
    assert capsys.readouterr().err == err
    monkeypatch.setenv(key, "local")
    assert main(["--data", "synthetic", TEXTS[0]]) == 0
    assert capsys.readouterr().out == "$20.00\n"
