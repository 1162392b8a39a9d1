"""A user error prints one line and exits 2; no traceback (that is for bugs)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from pricer.devtools.stub_server import StubServer
from tests.e2e.conftest import pricer_app, run_cli

pytestmark = pytest.mark.e2e


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """A user error's whole report: exit status 2, no traceback, one ``error: ...`` line."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Error executing job" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Missing input file: a DataError from the items source.
        (
            ["model=constant", "data=items", "data.train_paths=[/nonexistent/items.jsonl]"],
            "nonexistent",
        ),
        # The human baseline before anyone has priced the items.
        (["model=human", "model.guesses_path=/nonexistent/guesses.csv"], "human_export"),
        # A key no config has: Hydra's composition error.
        (["model=constant", "model.no_such_setting=1"], "no_such_setting"),
        # An unknown family.
        (["model=no_such_family"], "no_such_family"),
        # A data key the source does not have (each data option has a schema).
        (["model=constant", "data.n_record=5"], "n_record"),
        # A node of the user's own keys: "unknown key 'tracking.tags.note'", and no way offered.
        (["model=constant", "tracking.tags.note=x"], "add it with +tracking.tags.note=..."),
        (["model=constant", "data=real", "data.test_rows=ten"], "test_rows"),
        # A flag Hydra cannot read: argparse's usage, seven lines, above "train.py: error: ...".
        (["--cfg=nosuch"], "error: argument --cfg/-c: invalid choice: 'nosuch' (choose from"),
        (["--info", "nosuch"], "argument --info/-i: invalid choice: 'nosuch'"),
        (["model=constant", "--nosuch"], "error: unrecognized arguments: --nosuch "),
        # Overrides on both sides of a flag: Hydra reads one run of them ("unrecognized
        # arguments: seed=3 (see --help)", which said nothing of why).
        (
            ["model=constant", "--cfg", "job", "seed=3"],
            "Hydra reads the overrides as one group, before or after its flags (--cfg, -m, "
            "...), not on both sides: move seed=3 beside the others",
        ),
        # A quote left open: shlex's ValueError ("No closing quotation"), a traceback.
        (["model=constant", "tracking.run_name='my run"], "tracking.run_name='my run"),
        # Read through the sweep callback's run name as Hydra built its callbacks: the line
        # said "Interpolation key 'oops' not found", of no key.
        (["model=constant", "data.name=${oops}"], "error: data.name: Interpolation key 'oops'"),
        # A letter outside ASCII, unquoted: the lexer's "LexerNoViableAltException: ...".
        (
            ["model=constant", "+tracking.tags.note=café"],
            "error: +tracking.tags.note=café: Hydra reads a letter outside ASCII only inside "
            "quotes: give +tracking.tags.note='café' (on a shell's command line: "
            "\"+tracking.tags.note='café'\")",
        ),
        # Hydra's "package 'modle' not found in config", exit 1.
        (["--cfg", "job", "-p", "modle"], "error: -p modle: unknown key 'modle' (did you mean"),
        (
            ["--cfg", "job", "-p", "eval.sise"],
            "unknown key 'eval.sise' (did you mean 'eval.size'?)",
        ),
    ],
)
def test_user_error_is_one_line(
    overrides: list[str], expected: str, tracking_uri: str, tmp_path: Path
) -> None:
    # Its own cache: the human baseline's curates before it is refused, into the checkout's
    # data_cache/ by default.
    cache = f"curation.cache_dir={tmp_path}/cache"
    result = run_cli(
        pricer_app("train", *overrides, cache, workdir=tmp_path), tracking_uri, tmp_path
    )
    assert expected in the_error_line(result)


def key(name: str) -> str:
    """The pattern of an error naming key ``name``: "eval.size: ..." or "(key: size)"."""
    return rf"(key: ([a-z_]+\.)*{name}\b|^error: ([a-z_]+\.)*{name}: )"


@pytest.mark.parametrize(
    ("app", "overrides", "pattern"),
    [
        # A value of the wrong type: composing refuses it, naming the key.
        ("train", ["model=xgboost", "model.n_estimators=abc"], key("n_estimators")),
        ("leaderboard", ["models.svr.C=high"], key("C")),
        ("train", ["eval.size=abc"], key("size")),
        ("curate", ["data.batch_size=big"], key("batch_size")),
        # Ranges that composing cannot check: a ValueError with a traceback before.
        ("train", ["model=constant", "eval.size=-5"], "size must be >= 1"),
        ("train", ["model=constant", "validation.size=-1"], "validation.size must be >= 0"),
        ("leaderboard", ["eval.size=0"], "size must be >= 1"),
        # The generator's own sizes: its ValueError traceback, exit 1, from inside a run that
        # ended FAILED. (n_records is the slow one below: its check is the same one's.)
        ("train", ["model=constant", "data.batch_size=0"], "^error: data: batch_size must be >= 1"),
        ("curate", ["data.batch_size=-5"], "^error: data: batch_size must be >= 1, got -5$"),
        ("leaderboard", ["families=[constant,xgbost]"], r"unknown families \['xgbost'\]"),
        # MLflow's monitor took them as they came: -1 wrote a sample to the store on every
        # turn of its loop (3,672 in a 5 s run), 0 none at all.
        (
            "train",
            ["model=constant", "tracking.system_metrics.sampling_interval=-1"],
            r"^error: tracking\.system_metrics: sampling_interval must be > 0 seconds, got -1\.0$",
        ),
        (
            "leaderboard",
            ["tracking.system_metrics.samples_before_logging=0"],
            r"samples_before_logging must be >= 1, got 0$",
        ),
        # The family follows model=: "family=xgboost" trained tfidf_ridge (the default model)
        # and recorded it as an xgboost run, which promote would then crown as xgboost.
        (
            "train",
            ["family=xgboost"],
            r"^error: family=xgboost with model=tfidf_ridge: .* choose the family with "
            r"model=xgboost$",
        ),
        # Curation's ranges, checked only once the run was open (a FAILED run for each try);
        # train_size=0 left no training item: a fit's traceback after the curation. One check
        # and one floor: 0 was told ">= 1", and 1 was then told "at least 10".
        (
            "train",
            ["curation.split.train_size=0"],
            r"^error: curation: curation\.split\.train_size must be >= 10 .* or null .*got 0$",
        ),
        (
            "leaderboard",
            ["curation.split.train_size=3"],
            r"^error: curation: curation\.split\.train_size must be >= 10 .* or null .*got 3$",
        ),
        ("curate", ["curation.split.test_size=0"], r"test_size must be >= 1, got 0$"),
        ("train", ["curation.sample.max_per_slot=0"], r"max_per_slot must be >= 1, got 0$"),
        # It named the first family's random_state, which the user never typed.
        ("train", ["seed=abc"], "seed must be an integer, got 'abc'"),
        ("leaderboard", ["seed=1.5"], "seed must be an integer, got 1.5"),
        # Out of numpy's range: its "expected non-negative integer" traceback once the data had
        # loaded and the run had started (tfidf_ridge's random_state: "Seed must be between").
        ("train", ["model=tfidf_ridge", "seed=-1"], r"^error: seed must be from 0 to 4294967295"),
        (
            "leaderboard",
            ["seed=4294967296"],
            r"^error: seed must be from 0 to 4294967295 .*got 4294967296$",
        ),
        ("train", ["model=constant", "eval.seed=-1"], r"^error: eval: seed must be from 0 to "),
        (
            "train",
            ["model=constant", "validation.size=50", "validation.seed=-1"],
            r"^error: validation: seed must be from 0 to ",
        ),
        ("train", ["model=constant", "data.seed=-1"], r"^error: data: seed must be from 0 to "),
        # One process cleaned the records, and the run recorded data.num_proc=0.
        ("train", ["data.num_proc=0"], r"^error: data: num_proc must be >= 1 .*got 0$"),
        ("curate", ["data.num_proc=-1"], r"^error: data: num_proc must be >= 1 .*got -1$"),
        # A misspelt key names the right one. Hydra advised "+model.n_estimator=300", which
        # then failed at the family's constructor; with the +, the right name is offered too.
        (
            "train",
            ["model=xgboost", "model.n_estimator=300"],
            r"unknown key 'model\.n_estimator' \(did you mean 'model\.n_estimators'\?\)$",
        ),
        (
            "train",
            ["model=xgboost", "+model.n_estimator=300"],
            r"unknown key 'model\.n_estimator' \(did you mean 'model\.n_estimators'\?\)$",
        ),
        ("train", ["eval.sise=5"], r"unknown key 'eval\.sise' \(did you mean 'eval\.size'\?\)"),
        ("leaderboard", ["models.svr.c=2"], r"did you mean 'models\.svr\.C'"),
        # Nothing near: the keys there are listed.
        ("train", ["model=constant", "model.zzz=1"], r"unknown key 'model\.zzz' \(model has: "),
        # A member added to a family the leaderboard does not have: a node without a family.
        (
            "leaderboard",
            ["+model@models.ensemble.members.frontier=frontier"],
            r"^error: models\.ensemble names no family \(no _target_; it holds members\): "
            r"choose one first, e\.g\. \+model@models\.ensemble=<family>$",
        ),
        # An interpolation that does not resolve: which setting of a leaderboard's dozens.
        (
            "leaderboard",
            ["models.linear.alpha=${nope}"],
            r"^error: models\.linear\.alpha: Interpolation key 'nope' not found$",
        ),
        # NaN passed every range check made by comparison: XGBoost fitted a model that split
        # nowhere, LinearSVR one that learned nothing, each run FINISHED with its mae.
        (
            "train",
            ["model=xgboost", "model.min_child_weight=nan"],
            r"^error: model\.min_child_weight is nan, which is no value for a setting: give it "
            r"a number$",
        ),
        ("leaderboard", ["models.svr.epsilon=nan"], r"^error: models\.svr\.epsilon is nan, "),
        ("train", ["model=frontier", "model.timeout=nan"], r"^error: model\.timeout is nan, "),
        # A family's ranges (its _parameter_constraints): scikit-learn's check and XGBoost's
        # own ("value -3 for Parameter max_depth ...") failed the run once the data had loaded;
        # reg_lambda=inf fitted trees that never split, the run FINISHED with its mae.
        ("train", ["model=random_forest", "model.n_estimators=0"], r"^error: model\.n_estimat"),
        ("train", ["model=xgboost", "model.max_depth=-3"], r"model\.max_depth must be an int "),
        ("train", ["model=xgboost", "model.reg_lambda=inf"], r"reg_lambda must be a float in "),
        ("leaderboard", ["models.svr.C=0"], r"^error: models\.svr\.C must be a float in the "),
        # A key added with + inside an LLM family's mapping: refused only as the run fitted (a
        # FAILED run), the prompt's line listing every key rather than the one meant.
        (
            "train",
            ["model=frontier", "+model.prompt.sytem=x"],
            r"^error: unknown key 'model\.prompt\.sytem' \(did you mean 'model\.prompt\.system'",
        ),
        ("train", ["model=frontier", "+model.pacing.rmp=5"], r"did you mean 'model\.pacing\.rpm'"),
        # Another app's primary config: it failed on a key the app reads ("Key 'family' is not
        # in struct"), nothing said of the config given.
        (
            "train",
            ["-cn", "leaderboard"],
            r"^error: -cn leaderboard is the primary config of the leaderboard app \(python -m "
            r"pricer\.leaderboard, or pricer leaderboard\), not the train app's: leave -cn out",
        ),
        ("leaderboard", ["--config-name=predict"], r"^error: -cn predict is the config of pricer"),
    ],
)
def test_a_bad_setting_fails_in_one_line_before_any_run_or_data(
    app: str, overrides: list[str], pattern: str, tracking_uri: str, tmp_path: Path
) -> None:
    # A synthetic source that would take minutes to build: the check comes first.
    slow = "data.n_records=5000000"
    result = run_cli(pricer_app(app, *overrides, slow, workdir=tmp_path), tracking_uri, tmp_path)
    error = the_error_line(result)
    assert re.search(pattern, error), error
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["data.num_proc=0"], r"^error: data: num_proc must be >= 1 .*got 0$"),
        (["data.n_records=0"], r"^error: data: n_records must be >= 1, got 0$"),
        (["data=items", "data.train_paths=[/nowhere/items.jsonl]"], "/nowhere/items.jsonl$"),
    ],
)
def test_a_sweep_whose_every_trial_shares_a_bad_data_setting_opens_no_run(
    overrides: list[str], pattern: str, tracking_uri: str, tmp_path: Path
) -> None:
    # The sweep's parent run opened, its first trial refused the setting, and the parent
    # ended FAILED: a sweep in `pricer runs` for each try.
    command = [
        *pricer_app("train", "-m", "model.alpha=1,2", "validation.size=200", *overrides,
                    workdir=tmp_path),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    error = the_error_line(run_cli(command, tracking_uri, tmp_path))
    assert re.search(pattern, error), error
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_sweep_over_an_option_that_is_not_there_opens_no_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Each trial's config is composed as it launches: the parent run opened, and ended FAILED.
    command = [
        *pricer_app("train", "-m", "model=constant,xgbost", "validation.size=200",
                    workdir=tmp_path),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    error = the_error_line(run_cli(command, tracking_uri, tmp_path))
    assert error.startswith("error: unknown model option 'xgbost' (did you mean 'xgboost'?)")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_sweep_whose_launcher_would_run_no_trial_opens_no_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # joblib's "n_jobs == 0 in Parallel has no meaning" traceback as the first batch
    # launched, the sweep's parent run opened and ended FAILED.
    command = [
        *pricer_app("train", "-m", "model=constant", "model.statistic=mean,median",
                    "validation.size=200", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0",
                    workdir=tmp_path),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    error = the_error_line(run_cli(command, tracking_uri, tmp_path))
    assert error.startswith("error: hydra.launcher.n_jobs=0 runs no trial: "), error
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_curate_refuses_a_missing_item_file_before_any_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # train checked its item files before opening a run; curate opened one first, and each
    # mistyped path left a FAILED curation in `pricer runs`.
    missing = tmp_path / "nowhere" / "items.jsonl"
    result = run_cli(
        pricer_app(
            "curate",
            "data=items",
            f"data.train_paths=[{missing}]",
            f"output_dir={tmp_path / 'split'}",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert the_error_line(result) == f"error: item file not found: {missing}"
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    assert not (tmp_path / "split").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # A family's own setting, checked when it fits (scikit-learn's contract): one line, and
        # the run it started ends FAILED.
        (["model=frontier", "model.max_concurrency=0"], "max_concurrency must be >= 1"),
        # A claim's waiter waits for the longest a call can take (timeout x attempts): NaN
        # made that wait endless (and the SDK raised a traceback), null a TypeError traceback.
        (["model=frontier", "model.timeout=inf"], "timeout must be a finite number > 0"),
        (
            ["model=frontier", "model.max_retries=null"],
            "max_retries must be a whole number >= 0, got None",
        ),
        (["model=finetuned", "model.model="], "model is empty"),
        (["model=constant", "model.statistic=mode"], "statistic must be one of"),
        (["model=stack", "model.like_test_weight=0"], "like_test_weight must be a finite number"),
        # joblib's "n_jobs == 0 in Parallel has no meaning" traceback; XGBoost took 0 as every
        # core, and the run recorded 0.
        (["model=random_forest", "model.n_jobs=0"], "n_jobs must be a whole number >= 1, or -1"),
        (["model=xgboost", "model.n_jobs=0"], "n_jobs must be a whole number >= 1, or -1"),
        # LightGBM's own check: a 76-line traceback, exit 1.
        (
            [
                "model=stack_budget",
                "model.members.lgbm_log.estimator.subsample=2",
                "data.n_records=3000",  # the features come first: a smaller fit, a quicker test
                "curation.split.test_size=200",
            ],
            "lightgbm: Check failed: (bagging_fraction) <= (1.0)",
        ),
    ],
)
def test_a_family_setting_out_of_range_fails_in_one_line(
    overrides: list[str], expected: str, tracking_uri: str, tmp_path: Path
) -> None:
    result = run_cli(
        pricer_app("train", *overrides, f"curation.cache_dir={tmp_path}/cache", workdir=tmp_path),
        tracking_uri,
        tmp_path,
        env={"OPENAI_API_KEY": "unused"},
    )
    assert expected in the_error_line(result)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [run.info.status for run in runs] == ["FAILED"]


def test_a_min_df_that_leaves_no_word_fails_its_run_in_one_line(
    tracking_uri: str, tmp_path: Path
) -> None:
    # 2,200 is below the 2,504 training items, so the settings check passed it; no word is
    # in that many texts, and scikit-learn's ValueError was a traceback out of the run.
    overrides = ["model=bow_linear", "model.min_df=2200", "data.n_records=4000"]
    result = run_cli(
        pricer_app(
            "train",
            *overrides,
            "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path}/cache",  # not the checkout's data_cache/
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    line = "bow_linear: min_df=2200 leaves the text vectoriser no word: none is in 2,200 or more"
    assert the_error_line(result).startswith(f"error: {line}")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith(f"NoVocabulary: {line}")


KEYLESS = "error: frontier: environment variable OPENAI_API_KEY (named by api_key_env) is not set;"


@pytest.mark.parametrize(
    "command",
    [
        # The leaderboard fitted every family before the frontier (5.5 minutes on real data),
        # then ended "families failed: frontier", its parent and constant's run in the store.
        [
            "leaderboard",
            "families=[constant,frontier]",
            "+model@models.frontier=frontier",
            "data.n_records=4000",
            "curation.split.test_size=200",
        ],
        # A lone run opened its run and ended it FAILED.
        ["train", "model=frontier", "data.n_records=4000", "curation.split.test_size=200"],
    ],
    ids=["leaderboard", "train"],
)
def test_a_missing_api_key_is_refused_before_any_run(
    command: list[str], tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # run_cli passes this environment on
    app, *overrides = command
    started = time.monotonic()
    result = run_cli(
        pricer_app(app, *overrides, f"curation.cache_dir={tmp_path}/cache", workdir=tmp_path),
        tracking_uri,
        tmp_path,
    )
    seconds = time.monotonic() - started
    assert the_error_line(result).startswith(KEYLESS), result.stderr[-2000:]
    assert seconds < 60, seconds  # ~5 s here: Python and the libraries starting, nothing fitted
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    assert not (tmp_path / "cache").exists()  # no data curated either


def test_with_the_key_set_an_llm_leaderboard_runs_as_before(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check reads the key and nothing else: the server is the family's run's business."""
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    with StubServer() as stub:
        result = run_cli(
            pricer_app(
                "leaderboard",
                "families=[constant,frontier]",
                "+model@models.frontier=frontier",
                f"models.frontier.base_url={stub.base_url}",
                "models.frontier.tier=null",
                "models.frontier.cache_dir=null",
                "eval.size=20",
                "data.n_records=4000",
                "curation.split.test_size=200",
                f"curation.cache_dir={tmp_path}/cache",
                "tracking.log_model=false",
                workdir=tmp_path,
            ),
            tracking_uri,
            tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert sorted(run.info.run_name for run in runs) == [
        "constant · synthetic",
        "frontier · synthetic",
        "leaderboard · synthetic",
    ]
    assert {run.info.status for run in runs} == {"FINISHED"}


def test_a_sweep_whose_model_resolves_only_in_its_trials_is_not_refused(
    tracking_uri: str, tmp_path: Path
) -> None:
    # A seed per trial (`seed=${hydra:job.num}`) resolves in a trial, where Hydra knows its job:
    # the key check resolved the family's whole config as the multirun started, where Hydra
    # knows none, and the sweep ended in OmegaConf's traceback before any run, key or no key.
    result = run_cli(
        [
            sys.executable, "-m", "pricer.train", "-m", "model=linear", "seed=${hydra:job.num}",
            "validation.size=50", "data.n_records=4000", "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path}/cache", "tracking.log_model=false",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        tracking_uri,
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 2  # the sweep's parent and its one trial
    assert {run.info.status for run in runs} == {"FINISHED"}
    [trial] = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert trial.data.params["seed"] == "0"  # the trial's job number


def test_a_server_that_is_not_there_is_one_line(tracking_uri: str, tmp_path: Path) -> None:
    """The probe's one retry was announced by the openai SDK's INFO log line first."""
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    result = run_cli(
        pricer_app(
            "train",
            "model=frontier",
            f"model.base_url={url}",
            # Caches of its own, not the checkout's: the data is curated before the probe.
            f"model.cache_dir={tmp_path}/llm_cache",
            f"curation.cache_dir={tmp_path}/cache",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
        env={"OPENAI_API_KEY": "unused"},
    )
    assert the_error_line(result).startswith(f"error: cannot connect to {url}")
    assert "Retrying" not in result.stdout + result.stderr, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        # Nothing listens there: MLflow retried for minutes in silence (7 retries, backing off).
        (
            "http://127.0.0.1:{port}",
            r"^error: cannot reach the tracking server at http://127\.0\.0\.1:\d+ "
            r"\(Connection refused\): start it, or point MLFLOW_TRACKING_URI elsewhere$",
        ),
        # A database that does not answer: 108 s of retries, then a 240-line SQLAlchemy
        # traceback, exit 1.
        (
            "postgresql://pricer:hunter2secret@127.0.0.1:{port}/mlflow",
            r"^error: cannot reach the tracking database at "
            r"postgresql://pricer:\*\*\*@127\.0\.0\.1:\d+/mlflow \(Connection refused\): "
            r"start it, or point MLFLOW_TRACKING_URI elsewhere$",
        ),
        (
            "",  # tracking.experiment= given empty
            r"^error: tracking\.experiment is empty: name the experiment runs go to",
        ),
    ],
)
def test_a_store_that_cannot_be_used_is_one_line_within_seconds(
    store: str, expected: str, tracking_uri: str, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    setting = f"tracking.uri={store.format(port=port)}" if store else "tracking.experiment="
    started = time.monotonic()
    result = run_cli(
        pricer_app("train", "model=constant", setting, workdir=tmp_path),
        tracking_uri,
        tmp_path,
        timeout=120,
    )
    error = the_error_line(result)
    assert re.search(expected, error), error
    assert "hunter2secret" not in result.stdout + result.stderr
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("command", [["train", "model=constant"], ["runs"], ["predict", "drill"]])
def test_a_tracking_uri_exported_empty_is_said_to_be_empty(
    command: list[str], tmp_path: Path
) -> None:
    # MLFLOW_TRACKING_URI= (exported, empty) read as the working folder: "error:  names a
    # folder, MLflow's file store, ...", its subject missing, and a database suggested there.
    pricer = str(Path(sys.executable).with_name("pricer"))
    # Hydra's output folder out of the checkout (runs and predict take options, not overrides).
    output = [f"hydra.run.dir={tmp_path}/hydra"] if command[0] == "train" else []
    result = run_cli([pricer, *command, *output], "", tmp_path)
    assert the_error_line(result) == (
        "error: the tracking URI is empty (MLFLOW_TRACKING_URI is set to nothing, or "
        "tracking.uri is): unset the variable to track to the project's store, or give it a URI"
    )


@pytest.mark.parametrize("app", ["train", "promote"])
def test_a_deleted_experiment_is_one_line_naming_how_to_restore_it(
    app: str, tracking_uri: str, tmp_path: Path
) -> None:
    # Deleted in the UI, then used again: MLflow's "Cannot set a deleted experiment" was a
    # traceback, exit 1, from every app that logs.
    client = mlflow.MlflowClient()
    gone = client.create_experiment("gone")
    client.delete_experiment(gone)
    setting = "model=constant" if app == "train" else "data=synthetic"
    result = run_cli(
        pricer_app(app, setting, "tracking.experiment=gone", workdir=tmp_path),
        tracking_uri,
        tmp_path,
    )
    assert the_error_line(result) == (
        f"error: experiment 'gone' was deleted: restore it (mlflow experiments restore "
        f"--experiment-id {gone}) to log to it again, or send runs to another "
        "(tracking.experiment=NAME)"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        (["train", "model=constant"], "hydra.run.dir"),
        (["leaderboard"], "hydra.run.dir"),
        (["train", "-m", "model=constant", "seed=1,2", "validation.size=100"], "hydra.sweep.dir"),
    ],
)
def test_an_output_folder_that_cannot_be_made_is_one_line_before_any_run(
    arguments: list[str], key: str, tracking_uri: str, tmp_path: Path
) -> None:
    # Hydra's NotADirectoryError was a traceback; in a sweep, after the parent run had opened,
    # which was left FAILED.
    (tmp_path / "a_file").write_text("")
    blocked = tmp_path / "a_file" / "out"
    app, *overrides = arguments
    command = [*pricer_app(app, *overrides, workdir=tmp_path), f"{key}={blocked}"]
    assert the_error_line(run_cli(command, tracking_uri, tmp_path)) == (
        f"error: {key}: cannot make the output folder {blocked} (Not a directory): "
        f"give {key}=<a folder you can write>"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_the_version_is_said_once(tmp_path: Path) -> None:
    result = run_cli(pricer_app("train", "--version", workdir=tmp_path), "", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = result.stdout.splitlines()  # it was said twice
    assert line.startswith("Hydra ")


def test_cfg_shows_a_key_set_to_null_as_null(tracking_uri: str, tmp_path: Path) -> None:
    # Hydra took a null value for no key: "package ... not found in config", exit 1.
    shown = ["--cfg", "job", "-p", "model.stack_ridge_alpha"]
    command = pricer_app("train", *shown, "model=xgboost", "model.stack_ridge_alpha=null",
                         workdir=tmp_path)  # fmt: skip
    result = run_cli(command, tracking_uri, tmp_path)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "null", "")
