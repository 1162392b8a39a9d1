"""Candidate selection, the paired comparison and alias moves, on a real store with
training runs written directly (what a training run leaves behind, minus the training)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from omegaconf import DictConfig

from pricer.errors import ConfigError
from pricer.evaluation import EvalSettings
from pricer.models.constant import ConstantPricer
from pricer.tracking.data import EVAL_DIGEST_TAG, EVAL_SIZE_TAG
from pricer.tracking.model import MODEL_FILE, log_pricer
from pricer.tracking.registry import (
    DESCRIPTION_LIMIT,
    HISTORY_TITLE,
    PREDICTIONS_FILE,
    DataNotChosen,
    IncomparableChampion,
    NoCandidate,
    PromotionError,
    UnloadableCandidate,
    append_history,
    compare,
    promote,
)
from pricer.tracking.run import FAMILY_TAG
from pricer.tracking.tags import SWEEP_BEST_RUN, SWEEP_TRIAL
from tests.conftest import compose_config

N = 200
RNG = np.random.default_rng(0)
BASE = RNG.uniform(20, 60, N)  # the per-item errors of a decent model
# Lower mean error than BASE, but within the noise: a paired test cannot call it better.
NOISY = BASE + RNG.normal(0, 15, N)
NOISY = np.abs(NOISY + BASE.mean() - NOISY.mean() - 0.5)
EXAMPLE = pd.DataFrame({"text": ["a cordless drill", "a hammer"], "title": ["drill", "hammer"]})
PRICER = ConstantPricer(statistic="mean").fit(EXAMPLE, np.array([50.0, 20.0]))
MODEL = "pricer-synthetic"  # the registered model of the runs' data (data.name=synthetic)
PARENT = "mlflow.parentRunId"


@pytest.fixture(autouse=True)
def _one_writer_settles_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease's settle delay (2 s) only matters between writers in different processes, which
    test_promote_e2e races with the real delay; here one process writes the lease tag at a
    time, and 2 s per decision made this file three times as slow (294 s against 98 s)."""
    from pricer.tracking import lease

    monkeypatch.setattr(lease, "SETTLE_SECONDS", 0.01)


@pytest.fixture
def client(tracking_uri: str, tmp_path: Path) -> MlflowClient:
    mlflow.set_experiment("pricer")
    return MlflowClient()


def training_run(
    abs_errors: np.ndarray,
    *,
    family: str = "tfidf_ridge",
    digest: str = "items-a",
    failed: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    log_model: bool = True,
    data: str = "synthetic",
    trial_of: str | None = None,
    answered_by: str | None = None,
) -> str:
    """A FINISHED run as pricer.experiment leaves it: tags, mae, per-item table, model;
    ``trial_of``: a sweep's parent run, whose trial it is."""
    truth = np.linspace(5, 900, len(abs_errors)) if truth is None else truth
    failed = np.zeros(len(abs_errors), dtype=bool) if failed is None else failed
    estimate = np.where(failed, np.nan, truth + abs_errors)
    table = pd.DataFrame(
        {
            "title": [f"item {i}" for i in range(len(truth))],
            "truth": truth,
            "estimate": estimate,
            "error": estimate - truth,
            "abs_error": np.abs(estimate - truth),
            "failed": failed,
        }
    )
    tags = {EVAL_DIGEST_TAG: digest, EVAL_SIZE_TAG: str(len(truth)), FAMILY_TAG: family}
    if trial_of is not None:
        tags[SWEEP_TRIAL] = str(
            len(mlflow.search_runs(filter_string=f"tags.{PARENT} = '{trial_of}'"))
        )
    nested = {"nested": True, "parent_run_id": trial_of} if trial_of else {}
    with mlflow.start_run(run_name=family, tags=tags, **nested) as run:
        mlflow.log_param("data.name", data)  # as every training run logs its config
        mlflow.log_metric("mae", float(np.nanmean(table["abs_error"])))
        mlflow.log_metric("failure_rate", float(failed.mean()))
        if answered_by is not None:  # an LLM family whose replies named another model
            mlflow.log_metric("llm.answers_from_other_model", len(truth))
            mlflow.set_tag("llm.answered_by", answered_by)
        mlflow.log_table(table, PREDICTIONS_FILE)
        if log_model:
            log_pricer(PRICER)
    return run.info.run_id


def promote_with(*overrides: str, data: str | None = "synthetic") -> object:
    chosen = [f"data={data}"] if data else []
    cfg: DictConfig = compose_config("promote", ["eval.n_resamples=1000", *chosen, *overrides])
    return promote(cfg)


def nothing_moved(client: MlflowClient, error: BaseException, doing: str, history: str) -> None:
    """What a store failure before any decision leaves: one line that says what promote was
    doing, no alias moved, no version added, the history as it was, the run FAILED with it."""
    from pricer.errors import one_line

    said = one_line(error)  # the line pricer.cli.run prints
    assert said.startswith(f"the tracking store failed while {doing} (OperationalError: ")
    assert said.endswith("database is locked): no alias moved; promote again once it answers")
    assert "\n" not in said and "[SQL" not in said
    assert aliases(client) == {"champion": "1"}
    assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]
    assert client.get_registered_model(MODEL).description == history
    run = promotion_runs()[-1]
    assert run.info.status == "FAILED" and said in run.data.tags["error"]


def champion_and_challenger() -> tuple[str, str]:
    """A champion (``BASE``) and a challenger (``NOISY``: better, not significantly): their runs."""
    champion = training_run(BASE)
    promote_with()
    challenger = training_run(NOISY)
    assert promote_with().outcome == "challenger"
    return champion, challenger


def champion_and_better() -> str:
    """A champion (``BASE``) and a run far better than it, not promoted yet: the better run."""
    training_run(BASE)
    promote_with()
    return training_run(BASE * 0.6)


def aliases(client: MlflowClient) -> dict[str, str]:
    return {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}


def version_of(client: MlflowClient, run_id: str) -> str:
    [version] = client.search_model_versions(f"name='{MODEL}' and run_id='{run_id}'")
    return str(version.version)


def promotion_runs() -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`pricer.kind` = 'promotion'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )


def test_the_best_candidate_becomes_the_first_champion(client: MlflowClient) -> None:
    training_run(BASE * 2, family="constant")
    best = training_run(BASE)
    decision = promote_with()
    assert decision.outcome == "champion" and decision.candidate.run_id == best
    assert aliases(client) == {"champion": version_of(client, best)}
    version = client.get_model_version(MODEL, version_of(client, best))
    assert version.tags["pricer.decision"] == "champion"
    assert version.tags[EVAL_DIGEST_TAG] == "items-a" and version.tags[FAMILY_TAG] == "tfidf_ridge"
    assert version.description.startswith("Champion since ")
    history = client.get_registered_model(MODEL).description
    assert history.startswith(HISTORY_TITLE) and "first champion" in history
    [run] = promotion_runs()
    assert run.info.status == "FINISHED"
    assert run.data.tags["pricer.decision"] == "champion"
    assert run.data.tags["pricer.candidate_run_id"] == best


def test_a_data_name_with_a_quote_is_promoted_like_any_other(client: MlflowClient) -> None:
    # "data.name=kid's" registered its version, then the search for the run's versions put the
    # name into its filter unquoted: "the tracking store failed while registering the
    # candidate (... Invalid clause(s) in filter string ...)", a version with no decision.
    best = training_run(BASE, data="kid's")
    decision = promote_with('data.name="kid\'s"')
    assert decision.outcome == "champion" and decision.candidate.run_id == best
    [version] = client.search_model_versions('name="pricer-kid\'s"')
    assert version.run_id == best and version.tags["pricer.decision"] == "champion"
    assert client.get_registered_model("pricer-kid's").aliases == {"champion": version.version}
    # Its version is found again: the run is not registered a second time.
    assert promote_with('data.name="kid\'s"').outcome == "unchanged"
    assert len(client.search_model_versions('name="pricer-kid\'s"')) == 1


def test_a_significantly_better_candidate_replaces_the_champion(client: MlflowClient) -> None:
    old, waiting = champion_and_challenger()
    new = training_run(BASE * 0.6)
    decision = promote_with()
    assert decision.outcome == "champion"
    assert decision.comparison.test.p_value < 0.05
    old_version, new_version = version_of(client, old), version_of(client, new)
    # The new champion voids the challenger, which lost to the old one.
    assert aliases(client) == {"champion": new_version}
    assert version_of(client, waiting) != new_version
    tags = client.get_model_version(MODEL, new_version).tags
    assert tags["pricer.compared_with_version"] == old_version
    assert float(tags["pricer.compared_with_mae"]) == pytest.approx(BASE.mean(), abs=1e-3)
    assert float(tags["pricer.p_value"]) < 0.05
    replaced = client.get_model_version(MODEL, old_version).tags
    assert replaced["pricer.replaced_by_version"] == new_version
    history = client.get_registered_model(MODEL).description.splitlines()
    assert history[0] == HISTORY_TITLE and len(history) == 4
    assert "champion: version" in history[1] and f"beats version {old_version}" in history[1]
    assert "first champion" in history[-1]  # newest first
    run = promotion_runs()[-1]
    assert run.data.metrics["champion.mae"] == pytest.approx(BASE.mean())
    assert run.data.metrics["p_value"] < 0.05


def test_a_candidate_not_significantly_better_becomes_challenger(client: MlflowClient) -> None:
    champion = training_run(BASE)
    promote_with()
    candidate = training_run(NOISY)
    decision = promote_with()
    assert decision.candidate.run_id == candidate  # it is the best candidate ...
    assert decision.outcome == "challenger"  # ... but not proven better
    assert "not significantly better than champion version" in decision.reason
    assert decision.comparison.test.p_value >= 0.05
    assert aliases(client) == {
        "champion": version_of(client, champion),
        "challenger": version_of(client, candidate),
    }
    tags = client.get_model_version(MODEL, version_of(client, candidate)).tags
    assert tags["pricer.decision"] == "challenger"
    # Asking again changes nothing and writes no second history line.
    again = promote_with()
    assert again.outcome == "unchanged"
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 2
    assert len(client.get_registered_model(MODEL).description.splitlines()) == 3


def test_a_worse_family_is_refused_and_says_why(client: MlflowClient) -> None:
    champion = training_run(BASE)
    promote_with()
    training_run(BASE * 3, family="constant")
    decision = promote_with("candidates.family=constant")
    assert decision.outcome == "challenger"
    assert "is worse than champion version" in decision.reason
    assert "champion unchanged" in decision.reason
    assert aliases(client)["champion"] == version_of(client, champion)


def test_a_candidate_with_the_champions_very_errors_is_not_called_worse(
    client: MlflowClient,
) -> None:
    # A rerun of the champion's training (a deterministic family) erred exactly as it did on
    # every item: recorded as "worse than champion", both maes the same.
    champion = training_run(BASE)
    promote_with()
    rerun = training_run(BASE)
    decision = promote_with()
    assert decision.candidate.run_id == rerun and decision.outcome == "challenger"
    assert decision.comparison.test.mean_difference == 0
    assert "worse" not in decision.reason
    said = f" is as good as, not better than, champion version {version_of(client, champion)} ("
    assert said in decision.reason
    assert said in client.get_model_version(MODEL, version_of(client, rerun)).description


def test_candidates_are_scored_on_the_champions_items(client: MlflowClient) -> None:
    champion = training_run(BASE)
    promote_with()
    newer = training_run(BASE * 0.5, digest="items-b")  # other test items, newest and best
    decision = promote_with("candidates.family=tfidf_ridge")  # the README's second promote
    assert decision.outcome == "unchanged" and decision.candidate.run_id == champion
    assert client.search_model_versions(f"name='{MODEL}' and run_id='{newer}'") == []
    # Asking for the other items explicitly cannot be compared: one line, nothing moves.
    with pytest.raises(IncomparableChampion, match="cannot be compared, no alias moved") as error:
        promote_with("candidates.eval_digest=items-b")
    assert "\n" not in str(error.value)
    assert aliases(client) == {"champion": version_of(client, champion)}
    failed = promotion_runs()[-1]
    assert failed.info.status == "FAILED"
    assert "IncomparableChampion" in failed.data.tags["error"]


def test_a_champion_is_only_ever_scored_on_the_chosen_data(client: MlflowClient) -> None:
    synthetic = training_run(BASE * 0.3, digest="synthetic-items")  # far better, other data
    real = training_run(BASE, digest="real-items", data="real")
    decision = promote_with(data="real")
    assert decision.outcome == "champion" and decision.candidate.run_id == real
    assert decision.candidate.data == "real" and "on real data" in decision.reason
    champion = client.get_model_version_by_alias("pricer-real", "champion")
    assert champion.run_id == real and champion.tags["pricer.data"] == "real"
    assert promotion_runs()[-1].info.run_name == "promote · real"
    assert not client.search_registered_models(f"name='{MODEL}'")  # synthetic: untouched
    decision = promote_with(data="synthetic")
    assert decision.candidate.run_id == synthetic
    assert client.get_model_version_by_alias(MODEL, "champion").run_id == synthetic
    assert client.get_model_version_by_alias("pricer-real", "champion").run_id == real


def test_another_datas_registered_model_is_never_given_this_datas_champion(
    client: MlflowClient,
) -> None:
    # "data=synthetic registry.model_name=pricer-real" crowned a synthetic model as the real
    # data's champion, which `pricer predict --data real` then answered with.
    training_run(BASE * 0.3, digest="synthetic-items")
    with pytest.raises(ConfigError, match=r"^registry\.model_name=pricer-real is real data's .*"):
        promote_with("registry.model_name=pricer-real")
    assert client.search_registered_models() == []
    assert promotion_runs() == []
    # A name of one's own: its versions say which data it holds, and keep it to that data.
    real = training_run(BASE, digest="real-items", data="real")
    assert promote_with("registry.model_name=team", data="real").candidate.run_id == real
    with pytest.raises(PromotionError, match=r"^team holds versions evaluated on real data, "):
        promote_with("registry.model_name=team")
    client.delete_registered_model_alias("team", "champion")  # its versions say it still
    with pytest.raises(PromotionError, match=r"^team holds versions evaluated on real data, "):
        promote_with("registry.model_name=team")
    assert [v.run_id for v in client.search_model_versions("name='team'")] == [real]


@pytest.mark.parametrize(
    ("overrides", "options"),
    [
        ((), "--data synthetic"),
        (("registry.model_name=team",), "--model-name team"),
        (("registry.prefix=team",), "--model-name team-synthetic"),
        (("registry.champion_alias=best",), "--data synthetic --alias best"),
        # A name the registry takes, but argparse would read as an option: "--model-name -team"
        # stops predict with "expected one argument".
        (("registry.model_name=-team",), "--model-name=-team"),
    ],
)
def test_the_command_promote_says_to_use_prices_with_the_model_it_decided_on(
    client: MlflowClient,
    capsys: pytest.CaptureFixture[str],
    overrides: tuple[str, ...],
    options: str,
) -> None:
    # With a registered model or alias of one's own, "use it: pricer predict --data synthetic"
    # named pricer-synthetic@champion: another model, priced with while this one was said.
    from pricer.predict import main as predict

    training_run(BASE)
    promote_with(*overrides)
    [use] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("use it")]
    assert use == f'use it: pricer predict {options} "<text>", or pricer serve {options}'
    assert predict([*options.split(), "a cordless drill"]) == 0
    [said] = capsys.readouterr().err.splitlines()
    name, alias = MODEL, "champion"
    for override in overrides:
        key, _, value = override.partition("=")
        name = {"registry.model_name": value, "registry.prefix": f"{value}-synthetic"}.get(
            key, name
        )
        alias = value if key == "registry.champion_alias" else alias
    assert said.startswith(f"priced by {name} version 1 ({alias}): ")


def test_promote_without_data_lists_the_choices_and_starts_no_run(client: MlflowClient) -> None:
    training_run(BASE)
    training_run(BASE, data="real")
    training_run(BASE, data="real")
    with pytest.raises(DataNotChosen, match=r"data=real.*real \(2 runs\), synthetic \(1 run\)"):
        promote_with(data=None)
    assert promotion_runs() == []
    assert client.search_registered_models() == []


def test_a_misspelt_family_is_named_with_the_families_there(client: MlflowClient) -> None:
    # It said "train one first", as if no run of the family existed anywhere.
    training_run(BASE, family="xgboost")
    training_run(BASE, family="xgboost")
    training_run(BASE * 2, family="constant")
    message = (
        r"no FINISHED run of family 'xgbost' with a logged model on synthetic data \(did you "
        r"mean 'xgboost'\?\); families there: constant \(1 run\), xgboost \(2 runs\)$"
    )
    with pytest.raises(NoCandidate, match=message):
        promote_with("candidates.family=xgbost")
    assert client.search_registered_models() == []


def test_runs_without_a_logged_model_are_no_candidates(client: MlflowClient) -> None:
    training_run(BASE, log_model=False)
    with pytest.raises(NoCandidate, match=r"tracking\.log_model=true"):
        promote_with()
    with pytest.raises(NoCandidate, match="experiment 'elsewhere' does not exist"):
        promote_with("candidates.experiment=elsewhere")


def test_a_candidate_whose_model_file_is_damaged_moves_no_alias(client: MlflowClient) -> None:
    # Registered unchecked, it became champion ("first champion"), and predict and serving
    # then refused it: the registry named a model that cannot answer.
    champion = training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.5)
    model = mlflow.last_logged_model()
    local = Path(model.artifact_location.removeprefix("file://")) / "artifacts" / MODEL_FILE
    local.write_bytes(local.read_bytes()[:100])  # an upload cut short
    with pytest.raises(UnloadableCandidate, match=f"models:/{model.model_id} cannot be loaded"):
        promote_with()
    assert aliases(client) == {"champion": version_of(client, champion)}
    assert client.search_model_versions(f"name='{MODEL}' and run_id='{better}'") == []
    assert promotion_runs()[-1].info.status == "FAILED"
    shutil.rmtree(local.parent.parent)  # its files gone altogether: an MlflowException traceback
    with pytest.raises(UnloadableCandidate, match=r"cannot be loaded \(No such artifact"):
        promote_with()
    assert aliases(client) == {"champion": version_of(client, champion)}


@pytest.mark.parametrize(
    "failure",
    [
        mlflow.exceptions.MlflowException("API request failed with error code 503"),
        OSError(5, "Input/output error"),
    ],
)
def test_an_artifact_store_failing_while_the_candidate_s_model_is_checked_is_not_a_retrain(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    # Any MlflowException there read "cannot be loaded ... retrain": a store failing for a
    # moment sent the user to retrain a model whose files were whole; an OSError was a traceback.
    from pricer.errors import one_line
    from pricer.tracking import model
    from pricer.tracking.store import StoreUnreachable

    champion = training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.5)
    downloading = mlflow.artifacts.download_artifacts

    def unavailable(uri: str, *args: object, **kwargs: object) -> str:
        if uri.startswith(f"models:/{MODEL}/"):  # the champion's, checked first, answers
            return downloading(uri, *args, **kwargs)
        raise failure

    with monkeypatch.context() as store_down:
        store_down.setattr(model.mlflow.artifacts, "download_artifacts", unavailable)
        with pytest.raises(StoreUnreachable) as failed:
            promote_with()
    said = one_line(failed.value)
    assert said.startswith("the artifact store failed while the candidate's model models:/m-")
    assert str(failure).splitlines()[-1] in said and "retrain" not in said
    assert said.endswith("no alias moved; promote again once it answers")
    assert aliases(client) == {"champion": version_of(client, champion)}
    assert client.search_model_versions(f"name='{MODEL}' and run_id='{better}'") == []
    assert promotion_runs()[-1].info.status == "FAILED"
    assert mlflow.artifacts.download_artifacts is downloading
    assert promote_with().outcome == "champion"  # once it answers


@pytest.mark.parametrize("text", ['{"columns": ["truth", "abs_e', '{"rows": []}', "[1, 2]"])
def test_a_damaged_per_item_table_is_one_line(client: MlflowClient, text: str) -> None:
    # Cut short or replaced, it was a JSONDecodeError, KeyError or TypeError traceback.
    candidate, champion = training_run(BASE * 0.5), training_run(BASE)
    client.log_text(champion, text, PREDICTIONS_FILE)
    settings = EvalSettings.from_config(compose_config("promote").eval)
    with pytest.raises(PromotionError, match=f"{PREDICTIONS_FILE} of run {champion} is damaged"):
        compare(candidate, champion, settings)


def test_a_run_whose_per_item_table_is_damaged_is_never_crowned_first_champion(
    client: MlflowClient,
) -> None:
    # A first champion is compared with nothing, so its table went unread: crowned, every later
    # promotion then failed on it ("run ... is damaged ... no alias moved") and said no way out.
    damaged = training_run(BASE)
    client.log_text(damaged, '{"columns": ["truth", "abs_err', PREDICTIONS_FILE)
    with pytest.raises(PromotionError) as refused:
        promote_with()
    said = str(refused.value)
    assert said.startswith(f"{PREDICTIONS_FILE} of run {damaged} is damaged (")
    assert said.endswith("no alias moved")
    assert client.search_registered_models() == []
    assert promotion_runs()[-1].info.status == "FAILED"


def test_a_champion_whose_per_item_table_is_gone_names_the_way_out(
    client: MlflowClient,
) -> None:
    # "run ... has no evaluation/predictions.json ... no alias moved", promote after promote,
    # and nothing said how to crown a model that can be compared.
    champion = training_run(BASE)
    promote_with()
    client.log_text(champion, "not json", PREDICTIONS_FILE)
    training_run(BASE * 0.5)
    with pytest.raises(IncomparableChampion) as refused:
        promote_with()
    said = str(refused.value)
    assert said.startswith(f"{MODEL}@champion (version 1): {PREDICTIONS_FILE} of run {champion} ")
    assert said.endswith(
        "(retire it with pricer promote data=synthetic retire=true, then promote to crown a "
        "new one)"
    )
    assert aliases(client) == {"champion": "1"}


def test_items_without_a_price_are_left_out_of_both_sides(client: MlflowClient) -> None:
    failed = np.zeros(N, dtype=bool)
    failed[:10] = True
    candidate = training_run(BASE * 0.5, failed=failed)
    champion = training_run(BASE)
    settings = EvalSettings.from_config(compose_config("promote").eval)
    comparison = compare(candidate, champion, settings)
    assert comparison.n_dropped == 10 and comparison.test.n == N - 10
    assert comparison.test.mean_difference == pytest.approx(-0.5 * BASE[10:].mean())
    assert "10 items without a price left out" in comparison.describe()


def test_one_item_in_common_is_no_evidence_and_says_its_interval_is_undefined(
    client: MlflowClient,
) -> None:
    # One pair has no interval (NaN): the decision line read "(95% CI +nan to +nan)".
    failed = np.ones(N, dtype=bool)
    failed[0] = False
    comparison = compare(
        training_run(BASE * 0.5, failed=failed),
        training_run(BASE),
        EvalSettings.from_config(compose_config("promote").eval),
    )
    assert comparison.test.n == 1 and not comparison.candidate_better
    line = comparison.describe()
    assert "(95% CI n/a)" in line and "nan" not in line


def test_same_digest_but_different_items_cannot_be_compared(client: MlflowClient) -> None:
    one = training_run(BASE)
    other = training_run(BASE, truth=np.linspace(1, 100, N))
    settings = EvalSettings.from_config(compose_config("promote").eval)
    with pytest.raises(IncomparableChampion, match="per-item tables differ"):
        compare(one, other, settings)


def test_history_keeps_the_newest_lines_within_mlflows_limit(client: MlflowClient) -> None:
    client.create_registered_model(MODEL)
    for i in range(40):
        append_history(client, MODEL, f"decision {i}: " + "x" * 200)
    description = client.get_registered_model(MODEL).description
    assert len(description) <= DESCRIPTION_LIMIT
    lines = description.splitlines()
    assert lines[0] == HISTORY_TITLE and lines[1].startswith("- decision 39:")
    assert json.dumps(description)  # plain text


def _stale_reads(monkeypatch: pytest.MonkeyPatch, writers: int) -> None:
    """Every writer's first read of the registered model waits until each has read it: the
    read-modify-write of the description at its worst, deterministically."""
    import threading

    reading = MlflowClient.get_registered_model
    barrier = threading.Barrier(writers, timeout=30)
    first = threading.local()

    def read_then_wait(self: MlflowClient, name: str) -> object:
        model = reading(self, name)
        if not getattr(first, "done", False):
            first.done = True
            barrier.wait()
        return model

    monkeypatch.setattr(MlflowClient, "get_registered_model", read_then_wait)


def _at_once(*calls: object) -> None:
    """Run each call in its own thread, all at once, each with its own client; re-raise."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import BrokenBarrierError

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]  # type: ignore[arg-type]
    errors = [future.exception() for future in futures]
    # The first error that is not the barrier another one broke: the one to read.
    for error in sorted((e for e in errors if e), key=lambda e: isinstance(e, BrokenBarrierError)):
        raise error


@pytest.mark.parametrize("writers, inserts_race", [(5, False), (2, True)])
def test_history_lines_written_at_once_all_survive(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, writers: int, inserts_race: bool
) -> None:
    # Three promotions of one candidate at once each said "first champion: version 1", and
    # the description kept two of the three lines: each read it, added its line, wrote it.
    # inserts_race: the first writers at once each keep the description's older lines in the
    # one tag for them, and MLflow writes a tag as a read then an insert: the second of two
    # racing inserts of one key failed the promotion (SQLite's UNIQUE constraint, 1 run in 4
    # of five writers). Here the second write fails as it did then, every time.
    from pricer.tracking.registry import EARLIER_HISTORY_TAG

    client.create_registered_model(MODEL, description=f"{HISTORY_TITLE}\n- an earlier decision")
    setting = MlflowClient.set_registered_model_tag
    one_at_a_time = threading.Lock()  # so the second writer always finds the first's tag

    def insert_racing(self: MlflowClient, name: str, key: str, value: str) -> None:
        with one_at_a_time:
            existed = key in MlflowClient().get_registered_model(name).tags
            setting(self, name, key, value)
        if key == EARLIER_HISTORY_TAG and existed:
            raise mlflow.exceptions.MlflowException("UNIQUE constraint failed: a tag's key")

    lines = [f"2026-12-06 19:30 UTC champion: decision {i}" for i in range(writers)]
    with monkeypatch.context() as racing:
        _stale_reads(racing, writers)
        if inserts_race:
            racing.setattr(MlflowClient, "set_registered_model_tag", insert_racing)
        _at_once(*(lambda x=line: append_history(MlflowClient(), MODEL, x) for line in lines))
    history = client.get_registered_model(MODEL).description.splitlines()
    assert history[0] == HISTORY_TITLE and history[-1] == "- an earlier decision"
    assert sorted(history[1:-1]) == sorted(f"- {line}" for line in lines)


def test_a_history_line_taken_back_while_others_are_written_stays_out(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The undo of a decision whose alias did not move is the same read-modify-write: it could
    # put back lines another writer had just removed, or remove lines added meanwhile.
    from pricer.tracking.registry import drop_history_line

    client.create_registered_model(MODEL)
    withdrawn = append_history(client, MODEL, "2026-12-06 19:30 UTC champion: taken back")
    writers = 4
    lines = [f"2026-12-06 19:31 UTC challenger: decision {i}" for i in range(writers - 1)]
    with monkeypatch.context() as racing:
        _stale_reads(racing, writers)
        _at_once(
            lambda: drop_history_line(MlflowClient(), MODEL, withdrawn),
            *(lambda line=line: append_history(MlflowClient(), MODEL, line) for line in lines),
        )
    history = client.get_registered_model(MODEL).description.splitlines()
    assert history[0] == HISTORY_TITLE
    assert sorted(history[1:]) == sorted(f"- {line}" for line in lines)


def test_a_run_that_left_items_unanswered_is_not_promoted(client: MlflowClient) -> None:
    # An LLM that refused the 12 items it would have priced worst scored $15 against a
    # complete family's $27 over different items, and became the first champion unopposed.
    failed = np.zeros(N, dtype=bool)
    failed[np.argsort(BASE)[-10:]] = True
    partial = training_run(BASE * 0.5, family="frontier", failed=failed)
    complete = training_run(BASE)
    result = promote_with()
    assert result.outcome == "champion"
    assert aliases(client) == {"champion": version_of(client, complete)}
    assert partial not in {v.run_id for v in client.search_model_versions(f"name='{MODEL}'")}


def test_only_runs_that_left_items_unanswered_say_so(client: MlflowClient) -> None:
    failed = np.zeros(N, dtype=bool)
    failed[:3] = True
    training_run(BASE, family="frontier", failed=failed)
    with pytest.raises(NoCandidate, match=r"3 of 200 .*unanswered.*rerun"):
        promote_with()


def test_a_champion_that_moves_during_the_comparison_is_left_where_it_went(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two promotions at once: each compared with the champion it read, and the one that
    moved its alias last won, even a candidate worse than the other's new champion."""
    from pricer.tracking import registry

    _, waiting = champion_and_challenger()
    training_run(BASE * 0.6)  # beats the first champion by far
    comparing = registry.compare

    def meanwhile(candidate: str, champion: str, settings: EvalSettings) -> object:
        # Another promotion makes the challenger champion while this one compares.
        client.set_registered_model_alias(MODEL, "champion", version_of(client, waiting))
        return comparing(candidate, champion, settings)

    monkeypatch.setattr(registry, "compare", meanwhile)
    with pytest.raises(registry.ChampionMoved, match=r"champion moved to version 2 .*version 1"):
        promote_with()
    assert aliases(client)["champion"] == version_of(client, waiting)
    [_, _, last] = promotion_runs()
    assert last.info.status == "FAILED" and "promote again" in last.data.tags["error"]
    history = client.get_registered_model(MODEL).description.splitlines()
    assert len(history) == 3  # no line for a decision that was not applied


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("registry.champion_alias=latest", "'latest' alias name (case insensitive) is reserved"),
        ("registry.challenger_alias=v2", "Version alias name 'v2' is reserved"),
        ("registry.champion_alias=best model", "Invalid alias name: 'best model'"),
        ("registry.challenger_alias=champion", "must differ"),
    ],
)
def test_an_alias_the_registry_refuses_stops_promote_before_anything_is_written(
    client: MlflowClient, override: str, why: str
) -> None:
    # "latest" crashed promote half-way: the version's description and the model's history
    # said it was crowned, no alias had moved, and the traceback ended a FAILED run.
    from pricer.errors import ConfigError

    champion_and_better()
    before = client.get_registered_model(MODEL)
    runs = len(promotion_runs())
    with pytest.raises(ConfigError, match=re.escape(why)):
        promote_with(override)
    after = client.get_registered_model(MODEL)
    assert (after.description, after.aliases) == (before.description, before.aliases)
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    assert len(promotion_runs()) == runs  # no run either


@pytest.mark.parametrize("retire", ["false", "true"])
@pytest.mark.parametrize(
    "override", ["registry.prefix=team/tools", "registry.model_name=tools:2026"]
)
def test_a_model_name_the_registry_refuses_stops_promote_before_any_run(
    client: MlflowClient, override: str, retire: str
) -> None:
    # Refused at the first registry call, inside the run: "the tracking store failed while
    # reading the champion (...): promote again once it answers", a store that was fine, and
    # a FAILED promotion run.
    from pricer.errors import ConfigError

    training_run(BASE)
    name = override.partition("=")[2] + ("-synthetic" if "prefix" in override else "")
    with pytest.raises(ConfigError) as refused:
        promote_with(override, f"retire={retire}")
    assert str(refused.value) == (
        f"registry.model_name={name}: Invalid model name '{name}'. Names cannot contain '/' or "
        "':'. (it is registry.prefix-data.name unless set: choose names without them)"
    )
    assert promotion_runs() == []
    assert client.search_registered_models() == []


@pytest.mark.parametrize(
    ("override", "why"),
    [
        (
            "+candidates.famly=xgboost",
            "unknown key 'candidates.famly' (did you mean 'candidates.family'?)",
        ),
        ("candidates.family=[1,2]", "family"),
        (
            "+registry.champion_aliass=best",
            "unknown key 'registry.champion_aliass' (did you mean 'registry.champion_alias'",
        ),
        # The bootstrap's generator takes no negative seed: numpy's ValueError traceback in a
        # FAILED promotion run, once a champion was there to compare with.
        ("eval.seed=-1", "eval: seed must be from 0 to 4294967295"),
        # Registered as "-synthetic", which predict --data synthetic never loads.
        ("registry.prefix=", "registry: prefix must not be empty"),
        ("registry.prefix=' '", "registry: prefix must not be empty"),
    ],
)
def test_a_promote_setting_that_is_not_one_is_refused_before_any_run(
    client: MlflowClient, override: str, why: str
) -> None:
    # "+candidates.famly=xgboost" promoted the best of every family: the filter was ignored.
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from pricer.errors import ConfigError

    training_run(BASE)
    refused = (ConfigError, HydraException, OmegaConfBaseException)
    with pytest.raises(refused, match=re.escape(why)):
        promote_with(override)
    assert promotion_runs() == []
    assert client.search_registered_models() == []


def test_promote_on_a_store_that_is_not_there_creates_none(tmp_path: Path) -> None:
    # A mistyped store path became a new store holding one FAILED promotion run.
    from pricer.tracking.store import StoreNotFound

    missing = tmp_path / "typo.db"
    with pytest.raises(StoreNotFound, match="no MLflow store at"):
        promote_with(f"tracking.uri=sqlite:///{missing}")
    assert list(tmp_path.iterdir()) == []


def test_two_first_champions_at_once_do_not_overwrite_each_other(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pricer.tracking import registry

    other = training_run(BASE * 2, family="constant")
    training_run(BASE)
    registering = registry.register

    def meanwhile(client_: MlflowClient, name: str, candidate: object) -> object:
        # Another promotion, started on the same empty registry, crowns its own candidate.
        [rival] = [c for c in registry.candidates(_all_synthetic()) if c.run_id == other]
        client_.set_registered_model_alias(
            name, "champion", registering(client_, name, rival).version
        )
        return registering(client_, name, candidate)

    monkeypatch.setattr(registry, "register", meanwhile)
    with pytest.raises(registry.ChampionMoved, match=r"champion moved to version 1 .*none"):
        promote_with()
    assert aliases(client) == {"champion": version_of(client, other)}


def test_two_promotions_of_one_run_at_once_leave_one_version_of_it(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each found no version of the run and registered one: two versions of the same model.
    run = training_run(BASE)
    registering = mlflow.register_model

    def meanwhile(model_uri: str, name: str) -> object:
        registering(model_uri, name)  # the other promotion, a moment earlier
        return registering(model_uri, name)

    monkeypatch.setattr(mlflow, "register_model", meanwhile)
    decision = promote_with()
    assert decision.outcome == "champion" and str(decision.version) == "1"
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", run)]
    assert aliases(client) == {"champion": "1"}


def _all_synthetic() -> object:
    from pricer.tracking.candidates import CandidateFilter

    return CandidateFilter(data="synthetic", experiment=None, family=None, eval_digest=None)


def test_the_first_champion_comes_from_the_fullest_evaluation_not_the_newest(
    client: MlflowClient,
) -> None:
    """With no champion the newest run's test items decided: a 20-item trial run made after
    the 250-item leaderboard became the first champion, and every later candidate had to be
    scored on its 20 items."""
    full = training_run(BASE)  # N items
    training_run(BASE * 1.2, family="constant")
    quick = training_run(BASE[:20] * 0.1, family="frontier", digest="items-b")  # newest
    decision = promote_with()
    assert decision.candidate.run_id == full
    assert decision.candidate.eval_size == str(N)
    assert aliases(client) == {"champion": version_of(client, full)}
    chosen = promote_with("candidates.eval_digest=items-b", "registry.champion_alias=quick")
    assert chosen.candidate.run_id == quick  # still reachable when asked for


def test_a_champion_that_moves_while_the_decision_is_written_leaves_it_marked_not_applied(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pricer.tracking import registry

    _, waiting = champion_and_challenger()
    better = training_run(BASE * 0.6)
    checking = registry._still_champion
    calls: list[int] = []

    def meanwhile(*args: object) -> None:
        calls.append(1)
        if len(calls) == 2:  # after the version's tags and description, before the alias
            client.set_registered_model_alias(MODEL, "champion", version_of(client, waiting))
        checking(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "_still_champion", meanwhile)
    with pytest.raises(registry.ChampionMoved):
        promote_with()
    version = client.get_model_version(MODEL, version_of(client, better))
    assert version.tags["pricer.decision"] == "not applied"
    assert version.description.startswith("Not applied: champion moved to version")
    assert aliases(client)["champion"] == version_of(client, waiting)
    assert len(client.get_registered_model(MODEL).description.splitlines()) == 3
    # The first champion was replaced by the other promotion's, not by this one's version.
    first = client.get_model_version(MODEL, "1")
    assert "pricer.replaced_by_version" not in first.tags


def test_sigterm_while_the_decision_is_written_leaves_it_whole(
    client: MlflowClient, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between the registry's writes it left "Champion since ..." and pricer.decision=champion
    # on a version that never got the alias, the history line missing, the run KILLED.
    from pricer import interrupt
    from pricer.tracking import registry

    better = champion_and_better()
    appending = registry.append_history

    def signalled(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # after the version's record, before the alias
        appending(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "append_history", signalled)
    with pytest.raises(interrupt.Interrupted):
        promote_with()
    version = client.get_model_version(MODEL, version_of(client, better))
    assert version.tags["pricer.decision"] == "champion"
    assert aliases(client) == {"champion": str(version.version)}
    assert "- " in client.get_registered_model(MODEL).description.splitlines()[1]
    assert len(client.get_registered_model(MODEL).description.splitlines()) == 3
    run = promotion_runs()[-1]
    assert run.info.status == "FINISHED" and run.data.tags["pricer.decision"] == "champion"


def test_a_champion_whose_run_is_gone_from_the_store_is_one_line(client: MlflowClient) -> None:
    # `mlflow gc` removes a deleted run for good: promote was an MlflowException traceback.
    from mlflow.tracking._tracking_service.utils import _get_store

    champion = training_run(BASE)
    promote_with()
    training_run(BASE * 0.5)
    client.delete_run(champion)
    _get_store()._hard_delete_run(champion)  # what `mlflow gc` does
    with pytest.raises(IncomparableChampion, match=f"run {champion}, which is gone from"):
        promote_with()
    assert aliases(client) == {"champion": "1"}


@pytest.mark.parametrize("removed", ["its LoggedModel", "its files"])
def test_a_champion_whose_model_is_gone_is_one_line_and_stays_where_it_is(
    client: MlflowClient, removed: str
) -> None:
    # It stayed champion: promote compared candidates with its run's per-item table and said
    # "champion unchanged", while predict and serve could not load it.
    from pricer.errors import one_line
    from pricer.tracking.champions import ModelNotFound, fetch_verified

    champion_and_challenger()
    before = aliases(client)
    model_id = client.get_model_version(MODEL, before["champion"]).source.removeprefix("models:/")
    if removed == "its LoggedModel":
        client.delete_logged_model(model_id)
    else:
        location = client.get_logged_model(model_id).artifact_location
        shutil.rmtree(location.removeprefix("file://"))
    with pytest.raises(PromotionError) as raised:  # exit 2, as every UserError
        promote_with()
    said = one_line(raised.value)
    assert said.startswith(f"{MODEL}@champion (version {before['champion']}) cannot be loaded (")
    assert said.endswith(
        "no alias moved (retire it with pricer promote data=synthetic retire=true, then "
        "promote to crown a new one)"
    )
    assert "\n" not in said
    assert aliases(client) == before
    run = promotion_runs()[-1]
    assert run.info.status == "FAILED" and said in run.data.tags["error"]
    # predict, in that state: one line that names the model it cannot load, and why.
    settings = {"model_uri": None, "model_name": MODEL, "prefix": "pricer", "alias": "champion"}
    gone = f"Logged model with ID '{model_id}' not found.|No such artifact: ''"
    with pytest.raises(ModelNotFound) as raised:
        fetch_verified(mlflow.get_tracking_uri(), settings)
    said = one_line(raised.value)
    assert re.fullmatch(
        f"cannot load models:/{MODEL}@champion from .*: ({gone}) \\(version "
        f"{before['champion']}'s logged model was deleted or its files removed: retire it "
        "with pricer promote data=synthetic retire=true, then promote to crown a new one\\)",
        said,
    ), said


def test_a_challenger_whose_model_is_gone_is_not_sent_to_retire(
    client: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # predict --alias challenger named "pricer promote data=synthetic
    # registry.champion_alias=challenger retire=true", which stops at once ("champion_alias
    # and challenger_alias must differ"): retiring is for a champion.
    from pricer.predict import main as predict

    _, challenger = champion_and_challenger()
    version = client.get_model_version(MODEL, version_of(client, challenger))
    client.delete_logged_model(version.source.removeprefix("models:/"))
    capsys.readouterr()
    assert predict(["--data", "synthetic", "--alias", "challenger", "a cordless drill"]) == 2
    [said] = capsys.readouterr().err.splitlines()
    assert said.startswith(f"error: cannot load models:/{MODEL}@challenger from ")
    assert said.endswith(
        f"(version {version.version}'s logged model was deleted or its files removed: the "
        "challenger alias names a model nothing can load; choose another --alias)"
    )
    assert "retire" not in said


@pytest.mark.parametrize("failing", ["alias", "decision tag", "description"])
def test_a_store_failure_before_the_alias_moves_leaves_no_record_of_a_move(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # The store failing at the alias (a server's 503, SQLite's "database is locked") left
    # "Champion since ..." and pricer.decision=champion on the candidate, the history line
    # "champion: version 2 beats version 1" and pricer.replaced_by_version=2 on version 1,
    # which was still the champion. Failing at the version's own decision tag or description,
    # written outside the guard that takes a record back, it was the store's traceback.
    better = champion_and_better()
    unavailable = mlflow.exceptions.MlflowException("API request failed with error code 503")
    tag, describe = MlflowClient.set_model_version_tag, MlflowClient.update_model_version

    def alias(self: MlflowClient, name: str, alias: str, version: str) -> None:
        raise unavailable

    def decision_tag(self: MlflowClient, name: str, version: str, key: str, value: str) -> None:
        if key == "pricer.decision" and value == "champion":
            raise unavailable
        tag(self, name, version, key, value)

    def description(self: MlflowClient, name: str, version: str, description: str) -> object:
        if description.startswith("Champion since"):
            raise unavailable
        return describe(self, name, version, description)

    failures = {
        "alias": ("set_registered_model_alias", alias),
        "decision tag": ("set_model_version_tag", decision_tag),
        "description": ("update_model_version", description),
    }
    method, failure = failures[failing]
    history = client.get_registered_model(MODEL).description
    from pricer.tracking.store import StoreUnreachable

    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, method, failure)
        with pytest.raises(StoreUnreachable, match=r"\(MlflowException: API .* 503\): no alias"):
            promote_with()
    assert aliases(client) == {"champion": "1"}
    version = client.get_model_version(MODEL, version_of(client, better))
    assert version.tags["pricer.decision"] == "not applied"
    assert version.description.startswith("Not applied: the store failed")
    assert "503" in version.description and "promote again" in version.description
    first = client.get_model_version(MODEL, "1")
    assert "pricer.replaced_by_version" not in first.tags
    assert "pricer.replaced_at" not in first.tags
    assert client.get_registered_model(MODEL).description == history
    assert promotion_runs()[-1].info.status == "FAILED"
    # Once the store answers, the same candidate is crowned, with one history line.
    assert promote_with().outcome == "champion"
    assert aliases(client) == {"champion": str(version.version)}
    assert client.get_model_version(MODEL, "1").tags["pricer.replaced_by_version"] == "2"
    assert len(client.get_registered_model(MODEL).description.splitlines()) == 3


def test_a_store_failure_while_looking_for_the_run_s_version_registers_no_second_one(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any MlflowException from that search read as "no version yet": a 503 there registered
    # the run a second time, and the copy stayed once the check after it failed too.
    _, better = champion_and_challenger()  # version 2: the challenger's run has its version
    before = client.search_model_versions(f"name='{MODEL}'")

    def unavailable(self: MlflowClient, *args: object, **kwargs: object) -> None:
        raise mlflow.exceptions.MlflowException("API request failed with error code 503")

    from pricer.tracking.store import StoreUnreachable

    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, "search_model_versions", unavailable)
        with pytest.raises(StoreUnreachable, match="while registering the candidate"):
            promote_with()  # the same candidate again: its version is looked for
    after = client.search_model_versions(f"name='{MODEL}'")
    assert sorted(v.version for v in after) == sorted(v.version for v in before)
    assert version_of(client, better)  # still one version of that run


@pytest.mark.parametrize("failing", ["run record", "left version"])
def test_a_store_failure_after_the_alias_moved_says_the_decision_stands(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # The alias had moved and the version said "Champion since ...", but a store error while
    # the promotion run logged its metrics (or while the old champion's description was
    # turned) ended it FAILED with the bare store error, a traceback on the terminal: read
    # alone, a promotion that failed, though the registry had applied it.
    import pricer.tracking.registry as registry_module
    from pricer.tracking.registry import RecordIncomplete

    better = champion_and_better()

    def unavailable(*args: object, **kwargs: object) -> None:
        raise mlflow.exceptions.MlflowException("API request failed with error code 503")

    if failing == "run record":
        monkeypatch.setattr(registry_module, "_log_decision", unavailable)
    else:
        monkeypatch.setattr(registry_module, "held_until", unavailable)
    with pytest.raises(RecordIncomplete) as incomplete:
        promote_with()
    new = version_of(client, better)
    assert aliases(client) == {"champion": new}  # it moved, and the decision says so
    said = str(incomplete.value)
    assert said.startswith(f"{MODEL}@champion is version {new} as decided, but the tracking")
    assert "503" in said and "nothing to promote again" in said and "\n" not in said
    assert client.get_model_version(MODEL, new).tags["pricer.decision"] == "champion"
    run = promotion_runs()[-1]
    assert run.info.status == "FAILED"
    assert said in run.data.tags["error"]


def test_a_version_that_loses_its_alias_no_longer_says_it_holds_it(client: MlflowClient) -> None:
    # Each kept "Champion since ..." / "Challenger since ..." for good: the registry's version
    # list showed two champions, and challengers that no alias named any more.
    first, waiting = champion_and_challenger()
    closer = training_run(NOISY * 0.995)  # better than the challenger, still within the noise
    assert promote_with().outcome == "challenger"
    best = training_run(BASE * 0.6)
    assert promote_with().outcome == "champion"

    def description(run_id: str) -> str:
        return client.get_model_version(MODEL, version_of(client, run_id)).description

    new = version_of(client, best)
    assert description(best).startswith("Champion since ")
    replaced = description(first)
    assert re.match(
        rf"Champion from .+ UTC until .+ UTC \(replaced by version {new}\): first", replaced
    )
    assert re.match(
        rf"Challenger from .+ until .+ \(replaced as challenger by version "
        rf"{version_of(client, closer)}\): version {version_of(client, waiting)} ",
        description(waiting),
    )
    assert re.match(
        rf"Challenger from .+ until .+ \(version {new} replaced the champion it was compared "
        r"with\): ",
        description(closer),
    )


def test_only_the_trial_a_sweep_chose_is_a_candidate(client: MlflowClient) -> None:
    # The sweep ranks its trials on validation items; promote took the trial with the best
    # test mae, chosen on the very items its paired test then called significant.
    with mlflow.start_run(run_name="sweep", tags={"pricer.kind": "sweep"}) as sweep:
        pass
    chosen = training_run(BASE, trial_of=sweep.info.run_id)  # best on validation
    lucky = training_run(BASE * 0.6, trial_of=sweep.info.run_id)  # best on the test items
    with pytest.raises(NoCandidate, match=r"but 2 sweep trials that no sweep chose as its best"):
        promote_with()  # the sweep is still running: it chose none yet
    client.set_tag(sweep.info.run_id, SWEEP_BEST_RUN, chosen)
    decision = promote_with()
    assert decision.outcome == "champion" and decision.candidate.run_id == chosen
    assert client.search_model_versions(f"name='{MODEL}' and run_id='{lucky}'") == []
    alone = training_run(BASE * 0.6)  # a run of its own competes as any other
    assert promote_with().candidate.run_id == alone


def test_a_champion_measured_on_another_models_answers_says_so(client: MlflowClient) -> None:
    # A proxy answered "frontier" with another model: its mae was that model's, and the
    # version, its description, the history and predict's line read as the asked model's.
    from pricer.tracking.champions import describe

    run = training_run(BASE, family="frontier", answered_by="llama3.1:8b")
    decision = promote_with()
    said = f"{N} of its answers from llama3.1:8b, not the model asked for"
    assert decision.outcome == "champion" and said in decision.reason
    version = client.get_model_version(MODEL, version_of(client, run))
    assert said in version.description
    assert said in client.get_registered_model(MODEL).description
    assert version.tags["llm.answers_from_other_model"] == str(N)
    assert said in describe(f"models:/{MODEL}@champion", version, "champion")
    plain = training_run(BASE * 0.6)
    assert promote_with().outcome == "champion"
    version = client.get_model_version(MODEL, version_of(client, plain))
    assert "llm.answers_from_other_model" not in version.tags
    assert "asked for" not in describe(f"models:/{MODEL}@champion", version, "champion")


def test_a_champion_whose_validation_pass_another_model_answered_says_so(
    client: MlflowClient,
) -> None:
    # A sweep trial is chosen by its validation mae: answers from a substitute there alone
    # made a version whose tags, description and predict's line said nothing of it.
    from pricer.tracking.champions import describe

    run = training_run(BASE, family="frontier")
    client.set_tag(run, "llm.answered_by", "gpt-4o-mini")
    client.set_tag(run, "validation.llm.answered_by", "llama3.1:8b")
    client.log_metric(run, "llm.answers_from_other_model", 0)
    client.log_metric(run, "validation.llm.answers_from_other_model", 7)
    decision = promote_with()
    said = "7 of its answers from gpt-4o-mini, llama3.1:8b, not the model asked for"
    assert decision.outcome == "champion" and said in decision.reason
    version = client.get_model_version(MODEL, version_of(client, run))
    assert version.tags["llm.answers_from_other_model"] == "7"
    assert version.tags["llm.answered_by"] == "gpt-4o-mini, llama3.1:8b"
    assert said in describe(f"models:/{MODEL}@champion", version, "champion")


def _locked(*args: object, **kwargs: object) -> None:
    """SQLite's answer to a writer holding the database, as SQLAlchemy raises it."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("database is locked"))


@pytest.mark.parametrize(
    ("step", "doing"),
    [
        ("candidates", "searching the candidates"),
        ("champion", "reading the champion"),
        ("tables", "reading the prediction tables"),
        ("register", "registering the candidate"),
    ],
)
def test_a_store_failure_before_the_decision_is_one_line_and_moves_no_alias(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, step: str, doing: str
) -> None:
    # SQLite's "database is locked" (or a server's 503) while promote searched, read the
    # champion, downloaded the per-item tables or registered the candidate was a traceback:
    # read as a bug, with no word that nothing had moved.
    from pricer.errors import UserError
    from pricer.tracking import registry

    champion_and_better()
    history = client.get_registered_model(MODEL).description
    comparing = registry.compare
    with monkeypatch.context() as failing:  # undone before the store is read below
        if step == "candidates":
            failing.setattr(MlflowClient, "search_runs", _locked)
        elif step == "champion":
            failing.setattr(MlflowClient, "get_registered_model", _locked)
        elif step == "tables":

            def store_fails(*args: object) -> object:
                # Only once comparing: the champion's run was read before, as it should be.
                failing.setattr(MlflowClient, "get_run", _locked)
                return comparing(*args)  # type: ignore[arg-type]

            failing.setattr(registry, "compare", store_fails)
        else:
            failing.setattr(MlflowClient, "_create_model_version", _locked)
        with pytest.raises(UserError) as failed:
            promote_with()
    nothing_moved(client, failed.value, doing, history)


def test_a_bug_while_reading_the_champion_keeps_its_traceback(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the store's own errors are worded as its failure: anything else is a bug.
    from pricer.errors import UserError

    champion_and_better()

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("aliases")

    monkeypatch.setattr(MlflowClient, "get_registered_model", broken)
    with pytest.raises(KeyError) as failed:
        promote_with()
    assert not isinstance(failed.value, UserError)


def test_a_version_registered_while_the_champion_moved_says_why_it_holds_no_alias(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The champion moved while this promotion compared: the version it had registered was
    # left with neither a decision tag nor a description, an unexplained line in the list.
    from pricer.tracking import registry

    _, waiting = champion_and_challenger()
    better = training_run(BASE * 0.6)
    comparing = registry.compare

    def meanwhile(candidate: str, champion: str, settings: EvalSettings) -> object:
        client.set_registered_model_alias(MODEL, "champion", version_of(client, waiting))
        return comparing(candidate, champion, settings)

    with monkeypatch.context() as racing:
        racing.setattr(registry, "compare", meanwhile)
        with pytest.raises(registry.ChampionMoved) as moved:
            promote_with()
    new = version_of(client, better)
    version = client.get_model_version(MODEL, new)
    assert version.aliases == []
    assert version.tags["pricer.decision"] == "not applied"
    assert version.tags["pricer.promotion_run_id"] == promotion_runs()[-1].info.run_id
    assert version.description == f"Not applied: {moved.value}"
    assert version.description.startswith(
        f"Not applied: champion moved to version {version_of(client, waiting)} while this "
        "promotion compared against version 1"
    )
    assert version.description.endswith("promote again to compare with the new champion")
    # Promoted again, the run keeps its one version, compared with the new champion, and
    # that decision's record replaces "not applied".
    decision = promote_with()
    assert (decision.outcome, str(decision.version)) == ("champion", new)
    assert version_of(client, better) == new  # one version of the run, not two
    version = client.get_model_version(MODEL, new)
    assert version.tags["pricer.decision"] == "champion"
    assert version.tags["pricer.compared_with_version"] == version_of(client, waiting)
    assert version.tags["pricer.promotion_run_id"] == promotion_runs()[-1].info.run_id
    assert version.description.startswith("Champion since ")
    assert aliases(client) == {"champion": new}


def test_a_first_champion_that_lost_the_race_says_it_was_not_applied(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pricer.tracking import registry

    other = training_run(BASE * 2, family="constant")
    mine = training_run(BASE)
    registering = registry.register

    def meanwhile(client_: MlflowClient, name: str, candidate: object) -> object:
        [rival] = [c for c in registry.candidates(_all_synthetic()) if c.run_id == other]
        client_.set_registered_model_alias(
            name, "champion", registering(client_, name, rival).version
        )
        return registering(client_, name, candidate)

    monkeypatch.setattr(registry, "register", meanwhile)
    with pytest.raises(registry.ChampionMoved):
        promote_with()
    version = client.get_model_version(MODEL, version_of(client, mine))
    assert version.tags["pricer.decision"] == "not applied"
    assert version.description.startswith(
        f"Not applied: champion moved to version {version_of(client, other)} while this "
        "promotion compared against none"
    )


def test_a_version_another_promotion_of_its_run_decided_keeps_that_decision(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two promotions of one run at once share its version: the one that lost the race must
    # not mark "not applied" the version the other crowned.
    from pricer.tracking import registry

    better = champion_and_better()
    comparing = registry.compare

    def meanwhile(candidate: str, champion: str, settings: EvalSettings) -> object:
        # The other promotion of the same run registers it and crowns it, record first.
        [same] = [c for c in registry.candidates(_all_synthetic()) if c.run_id == better]
        version = registry.register(client, MODEL, same).version
        client.set_model_version_tag(MODEL, version, "pricer.decision", "champion")
        client.update_model_version(MODEL, version, description="Champion since now: better")
        client.set_registered_model_alias(MODEL, "champion", version)
        return comparing(candidate, champion, settings)

    monkeypatch.setattr(registry, "compare", meanwhile)
    with pytest.raises(registry.ChampionMoved):
        promote_with()
    version = client.get_model_version(MODEL, version_of(client, better))
    assert version.tags["pricer.decision"] == "champion"
    assert version.description == "Champion since now: better"
    assert aliases(client) == {"champion": str(version.version)}


def test_a_version_whose_tags_were_cut_short_gets_them_when_promoted_again(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store failed between the registration and the version's last comparability tag:
    # promoting again found the version by its run and never wrote the missing tags.
    from pricer.tracking.store import StoreUnreachable

    run = training_run(BASE)
    tag = MlflowClient.set_model_version_tag

    def unavailable(self: MlflowClient, name: str, version: str, key: str, value: str) -> None:
        if key == "pricer.mae":
            raise mlflow.exceptions.MlflowException("API request failed with error code 503")
        tag(self, name, version, key, value)

    with monkeypatch.context() as failing:
        failing.setattr(MlflowClient, "set_model_version_tag", unavailable)
        with pytest.raises(StoreUnreachable, match="while registering the candidate"):
            promote_with()
    assert "pricer.mae" not in client.get_model_version(MODEL, version_of(client, run)).tags
    decision = promote_with()
    assert decision.outcome == "champion" and str(decision.version) == version_of(client, run)
    tags = client.get_model_version(MODEL, version_of(client, run)).tags
    assert float(tags["pricer.mae"]) == pytest.approx(BASE.mean(), abs=1e-3)
    assert tags[FAMILY_TAG] == "tfidf_ridge" and tags["pricer.data"] == "synthetic"
    assert (tags[EVAL_DIGEST_TAG], tags[EVAL_SIZE_TAG]) == ("items-a", str(N))


def test_a_first_champion_keeps_no_comparison_of_a_decision_taken_back(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decision taken back (the store failed at the alias) left its comparison tags on the
    # version; crowned later as a first champion, it still said it was compared with a version
    # and a p-value it never was, as this decision.
    from pricer.tracking.store import StoreUnreachable

    training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.6)

    def unavailable(self: MlflowClient, name: str, alias: str, version: str) -> None:
        raise mlflow.exceptions.MlflowException("API request failed with error code 503")

    with monkeypatch.context() as failing:
        failing.setattr(MlflowClient, "set_registered_model_alias", unavailable)
        with pytest.raises(StoreUnreachable, match="no alias moved"):
            promote_with()
    new = version_of(client, better)
    assert client.get_model_version(MODEL, new).tags["pricer.compared_with_version"] == "1"
    client.delete_registered_model_alias(MODEL, "champion")  # to crown a new one
    decision = promote_with()
    assert (decision.outcome, str(decision.version)) == ("champion", new)
    assert decision.comparison is None and "first champion" in decision.reason
    tags = client.get_model_version(MODEL, new).tags
    assert tags["pricer.decision"] == "champion"
    compared = {key for key in tags if key.startswith("pricer.compared_with_")}
    assert compared == set() and "pricer.p_value" not in tags
    assert "pricer.mean_difference" not in tags
    assert float(tags["pricer.mae"]) == pytest.approx((BASE * 0.6).mean(), abs=1e-3)


def test_a_replaced_champion_crowned_again_no_longer_says_it_was_replaced(
    client: MlflowClient,
) -> None:
    # Version 1, replaced by version 2, kept pricer.replaced_by_version=2 when it became
    # champion again: the version list said the champion had been replaced.
    first = training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.6)
    assert promote_with().outcome == "champion"
    replaced = client.get_model_version(MODEL, version_of(client, first)).tags
    assert replaced["pricer.replaced_by_version"] == version_of(client, better)
    client.delete_run(better)  # no longer a candidate ...
    client.delete_registered_model_alias(MODEL, "champion")  # ... nor champion
    decision = promote_with()
    assert (decision.outcome, decision.candidate.run_id) == ("champion", first)
    tags = client.get_model_version(MODEL, version_of(client, first)).tags
    assert tags["pricer.decision"] == "champion"
    assert "pricer.replaced_by_version" not in tags and "pricer.replaced_at" not in tags


@pytest.mark.parametrize(
    ("step", "doing"),
    [
        ("config", "logging the promotion run's config"),
        ("candidate tags", "recording the candidate on the promotion run"),
        ("candidate mae", "recording the candidate on the promotion run"),
    ],
)
def test_a_store_failure_on_the_promotion_run_before_the_decision_is_one_line(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, step: str, doing: str
) -> None:
    # "database is locked" while the promotion run logged its config or its candidate was the
    # store's traceback, though no alias had moved.
    from pricer.errors import UserError

    champion_and_better()
    history = client.get_registered_model(MODEL).description
    batch, metric = MlflowClient.log_batch, MlflowClient.log_metric

    def batch_fails(self: MlflowClient, run_id: str, *args: object, **kwargs: object) -> object:
        tags = kwargs.get("tags") or ()
        if (step == "config" and kwargs.get("params")) or (
            step == "candidate tags" and any(t.key == "pricer.candidate_run_id" for t in tags)
        ):
            _locked()
        return batch(self, run_id, *args, **kwargs)

    def metric_fails(
        self: MlflowClient, run_id: str, key: str, *args: object, **kw: object
    ) -> object:
        if step == "candidate mae" and key == "candidate.mae":
            _locked()
        return metric(self, run_id, key, *args, **kw)

    with monkeypatch.context() as failing:
        failing.setattr(MlflowClient, "log_batch", batch_fails)
        failing.setattr(MlflowClient, "log_metric", metric_fails)
        with pytest.raises(UserError) as failed:
            promote_with()
    nothing_moved(client, failed.value, doing, history)


def test_a_failing_artifact_store_is_not_read_as_a_missing_per_item_table(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any error downloading the table read "run X has no evaluation/predictions.json": an
    # artifact store failing for a moment sent the user to retrain a run whose table was there.
    import errno

    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from pricer.errors import one_line
    from pricer.tracking.store import StoreUnreachable

    candidate, champion = training_run(BASE * 0.5), training_run(BASE)
    settings = EvalSettings.from_config(compose_config("promote").eval)
    downloading = LocalArtifactRepository._download_file

    def unavailable(self: LocalArtifactRepository, remote_file_path: str, local_path: str) -> None:
        if remote_file_path.endswith("predictions.json"):  # a disk or mount failing
            raise OSError(errno.EIO, "Input/output error")
        downloading(self, remote_file_path, local_path)

    with monkeypatch.context() as failing:
        failing.setattr(LocalArtifactRepository, "_download_file", unavailable)
        with pytest.raises(StoreUnreachable) as failed:
            compare(candidate, champion, settings)
    said = one_line(failed.value)
    assert said.startswith(
        f"the artifact store failed while {PREDICTIONS_FILE} of run {candidate} was read ("
    )
    assert "Input/output error" in said and "has no" not in said and "\n" not in said
    assert said.endswith("no alias moved; promote again once it answers")
    # A table that is not there still says so.
    run = client.get_run(champion)
    Path(run.info.artifact_uri.removeprefix("file://"), PREDICTIONS_FILE).unlink()
    with pytest.raises(PromotionError) as missing:
        compare(candidate, champion, settings)
    # ... in words: MLflow's download error ("The following failures occurred ... #####
    # File predictions.json #####") said nothing the listing had not.
    assert one_line(missing.value) == (
        f"run {champion} has no {PREDICTIONS_FILE} (its artifacts list none) to compare "
        "per-item errors with: no alias moved"
    )


def test_a_champion_moved_in_after_the_check_is_checked_before_it_is_compared(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # promote checked the champion it read first, then compared against the champion it read
    # again: one another promotion moved in meanwhile, whose model was gone, was compared
    # unchecked and replaced as if predict could load it.
    from pricer.errors import one_line
    from pricer.tracking import registry
    from pricer.tracking.registry import UnloadableChampion

    _, waiting = champion_and_challenger()
    gone = version_of(client, waiting)
    model_id = client.get_model_version(MODEL, gone).source.removeprefix("models:/")
    client.delete_logged_model(model_id)
    better = training_run(BASE * 0.6)
    checking = registry._check_candidate_model

    def meanwhile(model_uri: str) -> None:
        # Between promote's check of the champion and decide's reading of it.
        client.set_registered_model_alias(MODEL, "champion", gone)
        checking(model_uri)

    monkeypatch.setattr(registry, "_check_candidate_model", meanwhile)
    with pytest.raises(UnloadableChampion) as raised:
        promote_with()
    assert one_line(raised.value).startswith(f"{MODEL}@champion (version {gone}) cannot be loaded")
    assert aliases(client) == {"champion": gone, "challenger": gone}  # as the other left them
    assert client.search_model_versions(f"name='{MODEL}' and run_id='{better}'") == []
    assert promotion_runs()[-1].info.status == "FAILED"


def retired(client: MlflowClient, version: str) -> dict[str, str]:
    """The retirement tags on ``version``."""
    tags = client.get_model_version(MODEL, version).tags
    return {
        key: tags[key] for key in ("pricer.retired_at", "pricer.retired_by_run_id") if key in tags
    }


def test_retire_deletes_the_champion_alias_and_records_why(client: MlflowClient) -> None:
    # A champion whose model was gone could only be retired in the MLflow UI or with
    # MlflowClient, which recorded nothing: no run, no history line, no word on the version.
    from pricer.tracking.retire import NothingToRetire

    champion, waiting = champion_and_challenger()
    history = client.get_registered_model(MODEL).description.splitlines()
    retirement = promote_with("retire=true")
    assert retirement.version == "1"
    assert aliases(client) == {"challenger": version_of(client, waiting)}  # left as it was
    run = promotion_runs()[-1]
    assert run.info.status == "FINISHED" and run.info.run_name == "retire · synthetic"
    assert run.data.tags["pricer.decision"] == "retired"
    assert run.data.tags["pricer.registered_version"] == "1"
    assert run.data.tags["pricer.champion_run_id"] == champion
    assert retired(client, "1")["pricer.retired_by_run_id"] == run.info.run_id
    assert re.match(
        rf"Champion from .+ UTC until .+ UTC \(retired by promotion run {run.info.run_id}\): ",
        client.get_model_version(MODEL, "1").description,
    )
    now = client.get_registered_model(MODEL).description.splitlines()
    assert now[2:] == history[1:]  # one line added, newest first
    assert re.fullmatch(
        rf"- .+ UTC retired: version 1 \(tfidf_ridge run {champion}, mae \$\d+\.\d\d\) is no "
        rf"longer champion, retired by promotion run {run.info.run_id}; pricer promote crowns a "
        "new one",
        now[1],
    )
    # Nothing left to retire: one line, and no run.
    with pytest.raises(NothingToRetire, match=f"^{MODEL} has no champion to retire"):
        promote_with("retire=true")
    with pytest.raises(NothingToRetire, match=r"^pricer-real is not registered"):
        promote_with("retire=true", data="real")
    assert len(promotion_runs()) == 3
    # Crowned again, the version no longer says it was retired.
    client.delete_run(waiting)  # the better run: no longer a candidate
    assert promote_with().outcome == "champion"
    assert aliases(client)["champion"] == "1" and retired(client, "1") == {}


@pytest.mark.parametrize("failing", ["alias", "history", "moved"])
def test_a_retirement_that_fails_before_the_alias_goes_leaves_no_record_of_it(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # Half-written, the registry would say a champion was retired that still holds the alias.
    from pricer.tracking import retire as retiring
    from pricer.tracking.registry import ChampionMoved
    from pricer.tracking.store import StoreUnreachable

    _, waiting = champion_and_challenger()
    before = client.get_model_version(MODEL, "1")
    history = client.get_registered_model(MODEL).description
    unavailable = mlflow.exceptions.MlflowException("API request failed with error code 503")
    still_there = retiring._still_there
    checks: list[int] = []

    def failure(*args: object, **kwargs: object) -> None:
        raise unavailable

    def moves(*args: object) -> None:  # another promotion crowns the challenger meanwhile
        checks.append(1)
        if len(checks) == 2:  # after the record, before the alias
            client.set_registered_model_alias(MODEL, "champion", version_of(client, waiting))
        still_there(*args)  # type: ignore[arg-type]

    with monkeypatch.context() as store_down:
        if failing == "alias":
            store_down.setattr(MlflowClient, "delete_registered_model_alias", failure)
        elif failing == "history":
            store_down.setattr(MlflowClient, "update_registered_model", failure)
        else:
            store_down.setattr(retiring, "_still_there", moves)
        expected = ChampionMoved if failing == "moved" else StoreUnreachable
        with pytest.raises(expected) as raised:
            promote_with("retire=true")
    if failing == "moved":
        assert str(raised.value).startswith("champion moved to version 2 while version 1 was")
        assert aliases(client)["champion"] == version_of(client, waiting)
    else:
        assert str(raised.value).endswith(
            "503): champion is still version 1 and the record was taken back; retire again "
            "once it answers"
        )
        assert aliases(client)["champion"] == "1"
    after = client.get_model_version(MODEL, "1")
    assert (after.description, after.tags) == (before.description, before.tags)
    assert client.get_registered_model(MODEL).description == history
    assert promotion_runs()[-1].info.status == "FAILED"


def test_a_retirement_whose_take_back_the_store_cut_short_says_so_and_the_next_finishes_it(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It said "the record was taken back" of a record the store had kept part of.
    from pricer.tracking.store import StoreUnreachable

    champion_and_challenger()
    before = client.get_model_version(MODEL, "1")
    unavailable = mlflow.exceptions.MlflowException("API request failed with error code 503")
    failed_alias: list[int] = []
    update_version = MlflowClient.update_model_version

    def alias_fails(*args: object, **kwargs: object) -> None:
        failed_alias.append(1)
        raise unavailable

    def fails_once_the_alias_did(self: MlflowClient, *args: object, **kwargs: object) -> object:
        if failed_alias:  # the take-back's own write: the store is still down
            raise unavailable
        return update_version(self, *args, **kwargs)

    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, "delete_registered_model_alias", alias_fails)
        store_down.setattr(MlflowClient, "update_model_version", fails_once_the_alias_did)
        with pytest.raises(StoreUnreachable) as raised:
            promote_with("retire=true")
    assert str(raised.value).endswith(
        "503): champion is still version 1 and the store failed again while the record was "
        "taken back: the next promote or retire takes up what is left of it; retire again once "
        "it answers"
    )
    assert "pricer.pending" in client.get_registered_model(MODEL).tags  # for the next to take up
    assert client.get_model_version(MODEL, "1").description != before.description  # part kept
    # The store back, the next lease holder takes the rest back first, then retires it anew.
    promote_with("retire=true")
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" not in model.tags and "champion" not in aliases(client)
    assert model.description.count(" retired: ") == 1  # its own line; the stopped one's gone


def another_holds_the_lease(client: MlflowClient, seconds: float = 600) -> str:
    """The lease tag another promotion, still at work, wrote: its value."""
    import time

    value = f"another-promotion:{time.time() + seconds:.3f}"
    client.set_registered_model_tag(MODEL, "pricer.lease", value)
    return value


@pytest.mark.parametrize("retiring", [False, True])
def test_a_promotion_that_cannot_get_the_lease_fails_in_one_line_having_recorded_no_decision(
    client: MlflowClient, retiring: bool
) -> None:
    # Another promotion checks the champion, records its decision and moves the alias: this
    # one waits for it (bounded), then gives up before any check or write of its own.
    from pricer.errors import one_line
    from pricer.tracking.registry import LeaseBusy

    better = champion_and_better()
    holder = another_holds_the_lease(client)
    before = client.get_model_version(MODEL, "1")
    history = client.get_registered_model(MODEL).description
    overrides = ["retire=true"] if retiring else []
    with pytest.raises(LeaseBusy) as busy:
        promote_with(*overrides, "registry.lease_wait_seconds=1")
    said = one_line(busy.value)
    assert re.fullmatch(
        rf"another promotion of {MODEL} holds its lease \(until \d\d:\d\d:\d\d UTC\) and still "
        rf"did after 1 s of waiting: no decision recorded, no alias moved; "
        rf"{'retire' if retiring else 'promote'} again",
        said,
    ), said
    assert aliases(client) == {"champion": "1"}
    model = client.get_registered_model(MODEL)
    assert model.description == history and model.tags["pricer.lease"] == holder
    after = client.get_model_version(MODEL, "1")
    assert (after.description, after.tags) == (before.description, before.tags)
    if not retiring:  # registered before the lease, its decision never written
        waiting = client.get_model_version(MODEL, version_of(client, better))
        assert "pricer.decision" not in waiting.tags and not waiting.description
    run = promotion_runs()[-1]
    assert run.info.status == "FAILED" and said in run.data.tags["error"]


def test_an_expired_lease_does_not_hold_up_a_promotion(client: MlflowClient) -> None:
    better = champion_and_better()
    another_holds_the_lease(client, seconds=-1)  # its holder was killed a while ago
    assert promote_with("registry.lease_wait_seconds=0").outcome == "champion"
    assert aliases(client) == {"champion": version_of(client, better)}
    assert "pricer.lease" not in client.get_registered_model(MODEL).tags  # released


def test_a_lease_taken_from_a_holder_before_its_alias_moved_leaves_its_record_not_applied(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A holder slowed past its lease's end (a stalled store): another promotion takes the
    # lease; this one must not move the alias after all.
    from pricer.tracking import registry

    better = champion_and_better()
    history = client.get_registered_model(MODEL).description
    appending = registry.append_history

    def stalled(*args: object) -> str:
        key = appending(*args)  # type: ignore[arg-type]
        another_holds_the_lease(client)  # meanwhile, the lease ran out and was taken
        return key

    monkeypatch.setattr(registry, "append_history", stalled)
    with pytest.raises(registry.LeaseLost, match=r"^another promotion took the lease on "):
        promote_with()
    assert aliases(client) == {"champion": "1"}
    version = client.get_model_version(MODEL, version_of(client, better))
    assert version.tags["pricer.decision"] == "not applied"
    assert version.description.startswith("Not applied: another promotion took the lease on ")
    assert client.get_registered_model(MODEL).description == history
    assert "pricer.replaced_by_version" not in client.get_model_version(MODEL, "1").tags


def test_a_lease_another_wrote_between_this_one_s_read_and_write_is_theirs_not_a_store_error(
    client: MlflowClient, tmp_path: Path
) -> None:
    # Two promotions reaching a free lease at once: MLflow writes a tag as a read, then an
    # insert, and the second insert of one key fails the store's unique constraint. The
    # promotion that lost ended "the tracking store failed while taking the registered model's
    # lease" instead of waiting for the other's, as if the store had gone.
    import contextlib
    import sqlite3
    import time

    import sqlalchemy

    from pricer.tracking import lease

    client.create_registered_model("leased")
    theirs = f"another-promotion:{time.time() + 600:.3f}"
    inserted = []

    def the_other_inserts_first(*args: object) -> None:
        statement = str(args[2])  # (connection, cursor, statement, parameters, context, many)
        if inserted or not statement.lstrip().upper().startswith(
            "INSERT INTO REGISTERED_MODEL_TAGS"
        ):
            return
        inserted.append(True)  # its own connection: committed before this insert runs
        with contextlib.closing(sqlite3.connect(tmp_path / "mlflow.db")) as other, other:
            other.execute(
                "INSERT INTO registered_model_tags (workspace, name, key, value) "
                "SELECT workspace, name, ?, ? FROM registered_models WHERE name = ?",
                (lease.LEASE_TAG, theirs, "leased"),
            )

    sqlalchemy.event.listen(
        sqlalchemy.engine.Engine, "before_cursor_execute", the_other_inserts_first
    )
    try:
        with pytest.raises(lease.LeaseBusy, match=r"^another promotion of leased holds its lease"):
            lease.take(client, "leased", seconds=60, wait=0, again="promote again")
    finally:
        sqlalchemy.event.remove(
            sqlalchemy.engine.Engine, "before_cursor_execute", the_other_inserts_first
        )
    assert inserted
    assert client.get_registered_model("leased").tags[lease.LEASE_TAG] == theirs  # left theirs


def test_a_lease_released_after_its_end_leaves_the_lease_another_took_meanwhile(
    client: MlflowClient,
) -> None:
    # A holder slowed past its lease's end let it go as another promotion took it: it read
    # the tag as its own, the other wrote, and its delete removed the other's lease, which a
    # third could then take beside it (two holders).
    import time

    from pricer.tracking import lease

    client.create_registered_model("leased")
    mine = f"mine:{time.time() - 1:.3f}"
    client.set_registered_model_tag("leased", lease.LEASE_TAG, mine)
    theirs = f"theirs:{time.time() + 600:.3f}"

    class TakenMeanwhile(MlflowClient):
        def get_registered_model(self, name: str) -> object:
            read = super().get_registered_model(name)
            client.set_registered_model_tag(name, lease.LEASE_TAG, theirs)  # after the read
            return read

    expired = lease.Lease(TakenMeanwhile(), "leased", mine, time.time() - 1, "promote again")
    expired.release()
    assert client.get_registered_model("leased").tags[lease.LEASE_TAG] == theirs
    # One still running is let go.
    live = f"live:{time.time() + 600:.3f}"
    client.set_registered_model_tag("leased", lease.LEASE_TAG, live)
    lease.Lease(client, "leased", live, time.time() + 600, "promote again").release()
    assert lease.LEASE_TAG not in client.get_registered_model("leased").tags


class Killed(BaseException):
    """A SIGKILL, as near as one process can play it: no ``except Exception`` catches it, and
    (with ``Lease.release`` made a no-op) the lease it held stays until it expires."""


def killed_while_promoting(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, at: str, *overrides: str
) -> None:
    """Promote, killed at ``at`` of the decision's writes; then let its lease run out, as the
    lease of a killed holder does (``registry.lease_seconds`` later)."""
    import time

    from pricer.tracking import lease, registry

    def kill(*args: object, **kwargs: object) -> None:
        raise Killed

    describe, tag = MlflowClient.update_model_version, MlflowClient.set_model_version_tag

    def description(self: MlflowClient, name: str, version: str, description: str) -> object:
        if description.startswith(("Champion since", "Challenger since")):  # after its tags
            raise Killed
        return describe(self, name, version, description)

    def decision_tag(self: MlflowClient, name: str, version: str, key: str, value: str) -> None:
        if (key, value) == ("pricer.decision", "champion"):  # after its promotion run's id
            raise Killed
        tag(self, name, version, key, value)

    model_tag = MlflowClient.set_registered_model_tag

    def history_line(self: MlflowClient, name: str, key: str, value: str) -> None:
        if key.startswith("pricer.history."):  # the version's record written, not the line
            raise Killed
        model_tag(self, name, key, value)

    untag = MlflowClient.delete_registered_model_tag

    def pending_deleted(self: MlflowClient, name: str, key: str) -> None:
        if key == "pricer.pending":  # the take-up of another's record done, but for this
            raise Killed
        untag(self, name, key)

    with monkeypatch.context() as dying:
        dying.setattr(lease.Lease, "release", lambda self: None)  # no finally runs
        if at == "description":
            dying.setattr(MlflowClient, "update_model_version", description)
        elif at == "decision tag":  # among the version's tags
            dying.setattr(MlflowClient, "set_model_version_tag", decision_tag)
        elif at == "history line":  # before the history line's tag, the alias after it
            dying.setattr(MlflowClient, "set_registered_model_tag", history_line)
        elif at == "history published":  # the history line's tag written, the alias not yet
            dying.setattr(registry, "_publish_history", kill)
        elif at == "after the move":  # the alias written, nothing of what follows it
            dying.setattr(registry, "_after_the_move", kill)
        elif at == "pending deleted":  # taking up another's record, before its last write
            dying.setattr(MlflowClient, "delete_registered_model_tag", pending_deleted)
        elif at == "alias":  # the whole record written, the old champion "replaced by" too
            dying.setattr(MlflowClient, "set_registered_model_alias", kill)
        elif at == "retired alias":  # a retirement's whole record, the alias still there
            dying.setattr(MlflowClient, "delete_registered_model_alias", kill)
        else:  # the alias moved; the version it left not yet told
            dying.setattr(registry, "held_until", kill)
        with pytest.raises(Killed):
            promote_with(*overrides)
    token = client.get_registered_model(MODEL).tags["pricer.lease"].rpartition(":")[0]
    client.set_registered_model_tag(MODEL, "pricer.lease", f"{token}:{time.time() - 1:.3f}")


def champion_and_a_killed_promotion(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, at: str
) -> tuple[str, str]:
    """A champion (version 1), then a better linear run's promotion killed at ``at`` of its
    writes (``killed_while_promoting``), and a still better xgboost run left to promote next:
    the next run, and the killed promotion's version."""
    training_run(BASE)
    promote_with()
    killed = training_run(BASE * 0.6, family="linear")
    nextone = training_run(BASE * 0.55, family="xgboost")
    killed_while_promoting(client, monkeypatch, at, "candidates.family=linear")
    return nextone, version_of(client, killed)


@pytest.mark.parametrize("killed_at", ["description", "alias", "after the alias"])
def test_a_promotion_killed_while_it_records_its_decision_is_taken_up_by_the_next(
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    killed_at: str,
) -> None:
    # SIGTERM waits and a store failure is taken back, but a SIGKILL (the OOM killer, a CI
    # timeout) between the writes left the version "Champion since ..." with no alias, the
    # old champion "replaced by" it and a history line for a move never made, for good; killed
    # after the move, the old champion said "Champion since ..." beside the new one for good.
    nextone, half = champion_and_a_killed_promotion(client, monkeypatch, killed_at)
    assert client.get_model_version(MODEL, half).tags["pricer.decision"] == "champion"
    moved = killed_at == "after the alias"
    assert aliases(client) == {"champion": half if moved else "1"}
    capsys.readouterr()

    decision = promote_with("candidates.family=xgboost")  # the next to take the lease
    new = version_of(client, nextone)
    assert decision.outcome == "champion" and aliases(client) == {"champion": new}
    model = client.get_registered_model(MODEL)
    first, left = client.get_model_version(MODEL, "1"), client.get_model_version(MODEL, half)
    run_id = left.tags["pricer.promotion_run_id"]  # the killed promotion's
    history = model.description.splitlines()
    if moved:  # the decision held: what its record lacked is written, nothing taken back
        assert left.tags["pricer.decision"] == "champion"
        assert first.description.startswith("Champion from ")
        assert f" (replaced by version {half}): " in first.description
        assert first.tags["pricer.replaced_by_version"] == half
        assert left.description.startswith("Champion from ")  # the next one replaced it
        assert len(history) == 4  # the title, the first champion, the killed one's, the next's
        done = "the decision holds, and what its record still lacked was written"
    else:  # taken back: only the next promotion's decision is recorded
        assert left.tags["pricer.decision"] == "not applied"
        assert left.description.startswith(
            f"Not applied: the promotion stopped before its alias moved (promotion run {run_id} "
        )
        assert first.tags["pricer.replaced_by_version"] == new  # by the next one, not half
        assert f" (replaced by version {new}): " in first.description
        assert len(history) == 3 and not [line for line in history if f"version {half} " in line]
        done = (
            f"before champion moved to version {half}: its half-written record was taken back "
            f"(version {half} is marked not applied)"
        )
    assert "pricer.pending" not in model.tags and "pricer.lease" not in model.tags
    # The user is told, in one line of the next promotion's output.
    out = capsys.readouterr().out
    [said] = [line for line in out.splitlines() if line.startswith(f"{MODEL}: promotion run ")]
    assert said.startswith(f"{MODEL}: promotion run {run_id} stopped ") and said.endswith(done)


def test_a_retirement_killed_before_its_alias_went_is_taken_back_by_the_next(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Killed after its record, before the alias's deletion: version 1 said it was retired,
    # and the history too, while it still held the alias.
    training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.6, family="linear")
    before = client.get_model_version(MODEL, "1")
    history = client.get_registered_model(MODEL).description
    killed_while_promoting(client, monkeypatch, "retired alias", "retire=true")
    assert "pricer.retired_at" in client.get_model_version(MODEL, "1").tags
    capsys.readouterr()

    decision = promote_with()  # compared with version 1, still the champion
    assert decision.outcome == "champion" and decision.champion_before is not None
    first = client.get_model_version(MODEL, "1")
    assert "pricer.retired_at" not in first.tags and "pricer.retired_by_run_id" not in first.tags
    assert first.description.startswith("Champion from ")
    assert f" (replaced by version {version_of(client, better)}): " in first.description
    assert first.description.endswith(before.description.partition(": ")[2])
    lines = client.get_registered_model(MODEL).description.splitlines()
    assert lines[2:] == history.splitlines()[1:] and " retired: " not in "".join(lines)
    assert "pricer.pending" not in client.get_registered_model(MODEL).tags
    out = capsys.readouterr().out
    assert re.search(
        rf"^{MODEL}: the retirement by promotion run \w+ stopped before it deleted champion "
        r"from version 1: its half-written record was taken back \(champion is version 1\)$",
        out,
        re.MULTILINE,
    ), out


def test_a_retirement_failing_after_one_killed_puts_the_version_back_as_before_either(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retired again after a retirement killed before its alias went: the second read the
    # champion before it held the lease, the killed one's record ("retired", "Champion from
    # ... until ...") still on it, and its own failure put that record back from that read,
    # on a version that still held the alias, with no pending record left to take it back.
    from pricer.tracking.store import StoreUnreachable

    training_run(BASE)
    promote_with()
    before = client.get_model_version(MODEL, "1")
    history = client.get_registered_model(MODEL).description
    killed_while_promoting(client, monkeypatch, "retired alias", "retire=true")
    assert "pricer.retired_at" in client.get_model_version(MODEL, "1").tags

    def unavailable(*args: object, **kwargs: object) -> None:
        raise mlflow.exceptions.MlflowException("API request failed with error code 503")

    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, "delete_registered_model_alias", unavailable)
        with pytest.raises(StoreUnreachable, match=r"champion is still version 1 and the rec"):
            promote_with("retire=true")
    assert aliases(client) == {"champion": "1"}
    after = client.get_model_version(MODEL, "1")
    assert (after.description, after.tags) == (before.description, before.tags)
    model = client.get_registered_model(MODEL)
    assert model.description == history and "pricer.pending" not in model.tags


@pytest.mark.parametrize("killed_at", ["description", "after the alias"])
def test_a_version_deleted_after_a_promotion_was_killed_does_not_stop_every_next_one(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, killed_at: str
) -> None:
    # The champion a killed promotion replaced (or was replacing) was deleted by hand
    # meanwhile (still saying "Champion since ..." beside the new one, say): the take-up of
    # the killed one's record failed on it ("does not exist"), left the pending record, and
    # every promote and retire after failed the same way, "the tracking store failed".
    nextone, half = champion_and_a_killed_promotion(client, monkeypatch, killed_at)
    client.delete_model_version(MODEL, "1")

    decision = promote_with("candidates.family=xgboost")
    assert decision.outcome == "champion"
    assert aliases(client) == {"champion": version_of(client, nextone)}
    assert "pricer.pending" not in client.get_registered_model(MODEL).tags
    left = client.get_model_version(MODEL, half)
    held = killed_at == "after the alias"
    assert left.tags["pricer.decision"] == ("champion" if held else "not applied")


def test_the_line_on_a_killed_promotion_taken_back_says_what_its_version_now_is(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The half-crowned version ("Champion since ..." with no alias) deleted by hand before the
    # next promotion: the line said it "is marked not applied", of a version not there.
    nextone, half = champion_and_a_killed_promotion(client, monkeypatch, "description")
    client.delete_model_version(MODEL, half)
    capsys.readouterr()

    assert promote_with("candidates.family=xgboost").outcome == "champion"
    assert aliases(client) == {"champion": version_of(client, nextone)}
    out = capsys.readouterr().out
    [said] = [line for line in out.splitlines() if line.startswith(f"{MODEL}: promotion run ")]
    assert said.endswith(
        f"stopped before champion moved to version {half}: its half-written record was taken "
        f"back (version {half} is deleted)"
    ), said


def crowning_the_challenger(client: MlflowClient) -> tuple[str, tuple[dict[str, str], str]]:
    """A champion (version 1) and a challenger, whose run is promoted next with a lower
    ``eval.confidence``: its comparison then says better, and it is crowned. The
    challenger's version, and its record as challenger (tags, description)."""
    champion_and_challenger()
    waiting = aliases(client)["challenger"]
    held = client.get_model_version(MODEL, waiting)
    assert held.tags["pricer.decision"] == "challenger"
    assert held.tags["pricer.compared_with_version"] == "1"
    assert held.description.startswith("Challenger since ")
    return waiting, (held.tags, held.description)


CROWNED = "eval.confidence=0.5"  # the challenger's p-value (0.42) is below 1 - 0.5


@pytest.mark.parametrize("killed_at", ["decision tag", "alias", "alias, and its take-up"])
def test_a_challenger_whose_crowning_was_killed_keeps_its_challenger_record(
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    killed_at: str,
) -> None:
    # Crowned, its challenger record was overwritten by the champion's; killed before
    # champion moved, the take-back marked it "not applied" while it still held challenger:
    # the registry said the challenger was not applied, and its record was lost.
    waiting, record = crowning_the_challenger(client)
    history = client.get_registered_model(MODEL).description
    killed_while_promoting(client, monkeypatch, killed_at.partition(",")[0], CROWNED)
    half = client.get_model_version(MODEL, waiting)
    killed = half.tags["pricer.promotion_run_id"]  # written on by the killed promotion
    assert killed != record[0]["pricer.promotion_run_id"] and aliases(client)["champion"] == "1"
    if killed_at.endswith("take-up"):  # killed in there too: the next takes it up again
        killed_while_promoting(client, monkeypatch, "pending deleted", "retire=true")
        again = client.get_model_version(MODEL, waiting)
        assert (again.tags, again.description) == record  # put back once already
        assert "pricer.pending" in client.get_registered_model(MODEL).tags
    capsys.readouterr()

    promote_with("retire=true")  # the next to hold the lease, which leaves challenger alone
    left = client.get_model_version(MODEL, waiting)
    assert (left.tags, left.description) == record
    assert aliases(client) == {"challenger": waiting}  # the champion retired
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" not in model.tags
    assert model.description.splitlines()[2:] == history.splitlines()[1:]  # + the retirement
    assert "pricer.replaced_by_version" not in client.get_model_version(MODEL, "1").tags
    out = capsys.readouterr().out
    [said] = [line for line in out.splitlines() if line.startswith(f"{MODEL}: promotion run ")]
    assert said == (
        f"{MODEL}: promotion run {killed} stopped before champion moved to version {waiting}: "
        f"its half-written record was taken back (version {waiting} keeps its challenger "
        "record)"
    )


def test_a_challenger_whose_crowning_the_store_failed_keeps_its_challenger_record(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store failing at the alias, the record was withdrawn at once: the challenger, still
    # holding its alias, said "Not applied: the store failed ...", its record lost.
    from pricer.tracking.store import StoreUnreachable

    waiting, record = crowning_the_challenger(client)
    history = client.get_registered_model(MODEL).description

    def unavailable(self: MlflowClient, name: str, alias: str, version: str) -> None:
        raise mlflow.exceptions.MlflowException("API request failed with error code 503")

    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, "set_registered_model_alias", unavailable)
        with pytest.raises(StoreUnreachable) as failed:
            promote_with(CROWNED)
    left = client.get_model_version(MODEL, waiting)
    assert (left.tags, left.description) == record
    assert str(failed.value).endswith(
        f"no alias moved and its record was taken back (version {waiting} keeps its "
        "challenger record); promote again"
    )
    assert aliases(client) == {"champion": "1", "challenger": waiting}
    model = client.get_registered_model(MODEL)
    assert model.description == history and "pricer.pending" not in model.tags
    assert "pricer.replaced_by_version" not in client.get_model_version(MODEL, "1").tags
    # Once the store answers, it is crowned, its champion record in place of the other.
    assert promote_with(CROWNED).outcome == "champion"
    crowned = client.get_model_version(MODEL, waiting)
    assert crowned.tags["pricer.decision"] == "champion"
    assert crowned.description.startswith("Champion since ")


def test_a_challenger_whose_crowning_found_the_champion_moved_keeps_its_challenger_record(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The champion moved (by hand) after the version's record was written, before the alias:
    # the challenger, still holding its alias, said "Not applied: champion moved ...", its
    # record lost, as a killed writer's take-back or a store failure left it.
    from pricer.tracking import registry

    waiting, record = crowning_the_challenger(client)
    checking = registry._still_champion
    calls: list[int] = []

    def meanwhile(*args: object) -> None:
        calls.append(1)
        if len(calls) == 2:  # after the version's tags and description, before the alias
            client.delete_registered_model_alias(MODEL, "champion")
        checking(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "_still_champion", meanwhile)
    with pytest.raises(registry.ChampionMoved, match=r"^champion moved to version none while "):
        promote_with(CROWNED)
    assert len(calls) == 2
    left = client.get_model_version(MODEL, waiting)
    assert (left.tags, left.description) == record
    assert aliases(client) == {"challenger": waiting}
    assert "pricer.pending" not in client.get_registered_model(MODEL).tags


def challenger_again(client: MlflowClient) -> tuple[str, tuple[dict[str, str], str], str]:
    """A champion (version 1) and a challenger compared with it; then the champion alias
    moved by hand (the MLflow UI) to a version of another run, registered by hand, as good as
    version 1: the challenger's run, promoted again, is compared with it and decided
    challenger again, the alias it is given already its own. The challenger's version, its
    record as challenger against version 1 (tags, description), and the new champion."""
    from pricer.tracking import registry

    waiting, record = crowning_the_challenger(client)
    other = training_run(BASE, family="linear")
    [found] = [c for c in registry.candidates(_all_synthetic()) if c.run_id == other]
    champion = str(registry.register(client, MODEL, found).version)
    client.set_registered_model_alias(MODEL, "champion", champion)
    return waiting, record, champion


def decided_against(client: MlflowClient, version: str, champion: str) -> None:
    """Assert that ``version``'s record is, whole, that of a challenger against ``champion``."""
    record = client.get_model_version(MODEL, version)
    assert record.tags["pricer.decision"] == "challenger"
    assert record.tags["pricer.compared_with_version"] == champion
    assert record.description.startswith("Challenger since ")
    assert f" is not significantly better than champion version {champion} (" in (
        record.description
    )


@pytest.mark.parametrize("failing", ["history line", "description"])
def test_a_challenger_decided_challenger_again_keeps_its_record_when_the_store_fails(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # Its alias pointed at it before the decision, so a store failure part-way read as a
    # decision that held: its new comparison tags stayed beside its old description (or the
    # new record without its history line), half one decision's, half the other's, for good.
    from pricer.tracking.store import StoreUnreachable

    waiting, record, champion = challenger_again(client)
    history = client.get_registered_model(MODEL).description
    unavailable = mlflow.exceptions.MlflowException("API request failed with error code 503")
    model_tag, describe = MlflowClient.set_registered_model_tag, MlflowClient.update_model_version

    def history_line(self: MlflowClient, name: str, key: str, value: str) -> None:
        if key.startswith("pricer.history."):
            raise unavailable
        model_tag(self, name, key, value)

    def description(self: MlflowClient, name: str, version: str, description: str) -> object:
        if description.startswith("Challenger since"):
            raise unavailable
        return describe(self, name, version, description)

    failures = {
        "history line": ("set_registered_model_tag", history_line),
        "description": ("update_model_version", description),
    }
    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, *failures[failing])
        with pytest.raises(StoreUnreachable) as failed:
            promote_with()
    assert str(failed.value).endswith(
        f"no alias moved and its record was taken back (version {waiting} keeps its "
        "challenger record); promote again"
    )
    left = client.get_model_version(MODEL, waiting)
    assert (left.tags, left.description) == record
    assert aliases(client) == {"champion": champion, "challenger": waiting}
    model = client.get_registered_model(MODEL)
    assert model.description == history and "pricer.pending" not in model.tags
    # Once the store answers, it is compared with the champion there now, its record whole.
    assert promote_with().outcome == "challenger"
    decided_against(client, waiting, champion)


def test_a_challenger_decided_challenger_again_whose_history_failed_after_its_line_holds(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The store failing once its history line's tag was written (the last write of its
    # record, the alias already its own): the decision holds, and says so in one line, not
    # the store's traceback; the next lease holder finishes the history's description.
    from pricer.tracking import registry
    from pricer.tracking.registry import RecordIncomplete

    waiting, _, champion = challenger_again(client)

    def unavailable(*args: object, **kwargs: object) -> None:
        raise mlflow.exceptions.MlflowException("API request failed with error code 503")

    with monkeypatch.context() as store_down:
        store_down.setattr(registry, "_publish_history", unavailable)
        with pytest.raises(RecordIncomplete) as incomplete:
            promote_with()
    said = str(incomplete.value)
    assert said.startswith(f"{MODEL}@challenger is version {waiting} as decided, but the ")
    assert "while the promotion history was written (MlflowException: API" in said
    decided_against(client, waiting, champion)
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" in model.tags  # for the next lease holder
    against = f" is not significantly better than champion version {champion} ("
    assert against not in model.description  # in its tag alone
    capsys.readouterr()

    promote_with("retire=true")
    decided_against(client, waiting, champion)
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" not in model.tags
    assert against in model.description.splitlines()[2]  # after the retirement's
    assert "the decision holds, and what its record still lacked was written" in (
        capsys.readouterr().out
    )


def test_a_challenger_decided_challenger_again_whose_line_was_written_unseen_is_never_half(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store wrote its history line's tag but its reply was lost, failed the read that
    # asks whether the decision held, then every deletion of a registered model's tag: the
    # take-back put the version's old record back, could not drop the line, and the next lease
    # holder, finding the alias on the version, read the decision as held: the old record
    # under the new decision's line. Its line goes first, the record only once it is gone.
    import time

    from pricer.tracking.store import StoreUnreachable

    waiting, _, champion = challenger_again(client)
    unavailable = mlflow.exceptions.MlflowException("API request failed with error code 503")
    model_tag, read = MlflowClient.set_registered_model_tag, MlflowClient.get_registered_model
    untag = MlflowClient.delete_registered_model_tag
    down: list[str] = []

    def line_unseen(self: MlflowClient, name: str, key: str, value: str) -> None:
        model_tag(self, name, key, value)
        if key.startswith("pricer.history."):
            down.append("the read after it")
            raise unavailable

    def read_once_failing(self: MlflowClient, name: str) -> object:
        if down == ["the read after it"]:
            down.append("read")
            raise unavailable
        return read(self, name)

    def no_deletion(self: MlflowClient, name: str, key: str) -> None:
        if down:
            raise unavailable
        untag(self, name, key)

    with monkeypatch.context() as store_down:
        store_down.setattr(MlflowClient, "set_registered_model_tag", line_unseen)
        store_down.setattr(MlflowClient, "get_registered_model", read_once_failing)
        store_down.setattr(MlflowClient, "delete_registered_model_tag", no_deletion)
        with pytest.raises(StoreUnreachable) as failed:
            promote_with()
    assert down == ["the read after it", "read"]
    # Not "its record was taken back": the next lease holder finishes it.
    assert str(failed.value).endswith(
        "503): no alias moved, and the store failed again while its record was taken back: the "
        "next promote or retire takes up what is left of it; promote again once the store answers"
    )
    decided_against(client, waiting, champion)  # nothing of it put back beside its line
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" in model.tags
    # Its lease, which it could not release, runs out (``registry.lease_seconds`` later).
    token = model.tags["pricer.lease"].rpartition(":")[0]
    client.set_registered_model_tag(MODEL, "pricer.lease", f"{token}:{time.time() - 1:.3f}")

    promote_with("retire=true")  # the next lease holder finishes it
    decided_against(client, waiting, champion)
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" not in model.tags
    against = f" is not significantly better than champion version {champion} ("
    assert against in model.description.splitlines()[2]  # after the retirement's


@pytest.mark.parametrize("killed_at", ["history line", "description"])
@pytest.mark.parametrize("taker", ["retire=true", "promote"])
def test_a_challenger_decided_challenger_again_keeps_its_record_when_its_writer_is_killed(
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    killed_at: str,
    taker: str,
) -> None:
    # Killed before its record was whole, the alias already its own, the next lease holder
    # read the decision as held and finished it: the record stayed half old, half new.
    waiting, record, champion = challenger_again(client)
    history = client.get_registered_model(MODEL).description
    killed_while_promoting(client, monkeypatch, killed_at)
    half = client.get_model_version(MODEL, waiting)
    killed = half.tags["pricer.promotion_run_id"]  # written on by the killed promotion
    assert killed != record[0]["pricer.promotion_run_id"]
    assert half.tags["pricer.compared_with_version"] == champion  # its new tags, not all
    capsys.readouterr()

    if taker == "retire=true":  # leaves the challenger alone
        promote_with("retire=true")
        assert aliases(client) == {"challenger": waiting}
        left = client.get_model_version(MODEL, waiting)
        assert (left.tags, left.description) == record
    else:  # a better run crowned: the challenger it voids is told so, its record its own
        better = training_run(BASE * 0.6, family="xgboost")
        assert promote_with("candidates.family=xgboost").outcome == "champion"
        new = version_of(client, better)
        assert aliases(client) == {"champion": new}
        left = client.get_model_version(MODEL, waiting)
        assert left.tags == record[0]
        since, _, reason = record[1].removeprefix("Challenger since ").partition(": ")
        assert left.description.startswith(f"Challenger from {since} until ")
        assert left.description.endswith(
            f" (version {new} replaced the champion it was compared with): {reason}"
        )
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" not in model.tags
    assert model.description.splitlines()[2:] == history.splitlines()[1:]  # + the taker's
    out = capsys.readouterr().out
    [said] = [line for line in out.splitlines() if line.startswith(f"{MODEL}: promotion run ")]
    assert said == (
        f"{MODEL}: promotion run {killed} stopped before it recorded its decision (challenger "
        f"was version {waiting} already): its half-written record was taken back (version "
        f"{waiting} keeps its challenger record)"
    )


@pytest.mark.parametrize("killed_at", ["history published", "after the move"])
def test_a_challenger_decided_challenger_again_by_a_writer_killed_after_its_record_keeps_it(
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    killed_at: str,
) -> None:
    # Its history line written, the last of its record (the alias, already its own, written
    # after it or not): the decision holds, and the next lease holder finishes it.
    waiting, record, champion = challenger_again(client)
    history = client.get_registered_model(MODEL).description
    killed_while_promoting(client, monkeypatch, killed_at)
    killed = client.get_model_version(MODEL, waiting).tags["pricer.promotion_run_id"]
    assert killed != record[0]["pricer.promotion_run_id"]
    capsys.readouterr()

    promote_with("retire=true")
    assert aliases(client) == {"challenger": waiting}
    decided_against(client, waiting, champion)
    assert client.get_model_version(MODEL, waiting).tags["pricer.promotion_run_id"] == killed
    model = client.get_registered_model(MODEL)
    assert "pricer.pending" not in model.tags
    lines = model.description.splitlines()
    assert lines[3:] == history.splitlines()[1:]  # + the retirement's and the killed one's
    assert f" challenger: version {waiting} (" in lines[2]
    out = capsys.readouterr().out
    [said] = [line for line in out.splitlines() if line.startswith(f"{MODEL}: promotion run ")]
    assert said == (
        f"{MODEL}: promotion run {killed} stopped after it recorded its decision (challenger "
        f"was version {waiting} already): the decision holds, and what its record still "
        "lacked was written"
    )


@pytest.mark.parametrize("retiring", [False, True])
def test_a_holder_whose_lease_was_taken_before_its_first_write_leaves_the_new_holder_s_pending(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch, retiring: bool
) -> None:
    # Slowed past its lease's end before its first write (a stalled store), it wrote its
    # pending record over the one of the promotion that took the lease meanwhile, and, its
    # lease found lost at the alias, deleted it as its own: that one killed after, its
    # half-written record was left for good, nothing naming it for the next to take back.
    from pricer.tracking import registry
    from pricer.tracking import retire as retire_module

    champion_and_better()
    module = retire_module if retiring else registry
    taking_up = module.take_up_unfinished
    theirs: list[str] = []

    def stalled(*args: object) -> None:
        taking_up(*args)  # type: ignore[arg-type]
        holder = another_holds_the_lease(client)  # meanwhile, the lease ran out and was taken
        pending = {"lease": holder, "kind": "promotion", "run_id": "theirs", "version": "1"}
        pending |= {"alias": "champion", "history_key": "pricer.history.theirs", "at": "now"}
        theirs.append(json.dumps(pending))
        client.set_registered_model_tag(MODEL, "pricer.pending", theirs[0])

    monkeypatch.setattr(module, "take_up_unfinished", stalled)
    with pytest.raises(registry.LeaseLost, match=r"^another promotion took the lease on "):
        promote_with(*(["retire=true"] if retiring else []))
    assert aliases(client)["champion"] == "1"
    assert client.get_registered_model(MODEL).tags.get("pricer.pending") == theirs[0]


def test_a_holder_whose_lease_was_taken_while_it_took_up_a_record_leaves_the_new_holder_s(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slowed past its lease's end while it took back a killed promotion's record, it deleted
    # the pending record there at the end, by then the one of the promotion that took the
    # lease meanwhile (which took up the same record too): that one killed after, its own
    # half-written record was left with nothing naming it.
    from pricer.tracking import registry

    training_run(BASE)
    promote_with()
    training_run(BASE * 0.6, family="linear")
    killed_while_promoting(client, monkeypatch, "description", "candidates.family=linear")
    taking_up = registry._take_up_promotion
    theirs: list[str] = []

    def stalled(*args: object) -> str:
        said = taking_up(*args)  # type: ignore[arg-type]
        holder = another_holds_the_lease(client)  # meanwhile, the lease ran out and was taken
        pending = {"lease": holder, "kind": "promotion", "run_id": "theirs", "version": "1"}
        pending |= {"alias": "champion", "history_key": "pricer.history.theirs", "at": "now"}
        theirs.append(json.dumps(pending))
        client.set_registered_model_tag(MODEL, "pricer.pending", theirs[0])
        return said

    monkeypatch.setattr(registry, "_take_up_promotion", stalled)
    with pytest.raises(registry.LeaseLost, match=r"^another promotion took the lease on "):
        promote_with("candidates.family=linear")
    assert aliases(client) == {"champion": "1"}
    assert client.get_registered_model(MODEL).tags.get("pricer.pending") == theirs[0]


@pytest.mark.parametrize(
    "edited",
    [
        {"aliases": ["champion", "challenger", "third"]},
        {"version": ["2"]},
        {"kind": "merger"},
        {"retired": {"pricer.retired_at": 5}},
        {"before": {"tags": {"pricer.decision": 5}, "description": ""}},
        {"before": {"tags": {"pricer.mae": "1.0"}, "description": ""}},  # not a decision's
        {"before": "challenger"},
        {"alias_before": True},  # without the record to put back
        {"alias_before": "yes", "before": {"tags": {}, "description": ""}},
    ],
)
def test_a_pending_record_edited_by_hand_is_ignored_not_a_traceback_in_every_promotion(
    client: MlflowClient, capsys: pytest.CaptureFixture[str], edited: dict[str, object]
) -> None:
    # Only its keys were checked: a value of the wrong shape (three aliases to unpack, a
    # version given as a list) failed every promote and retire after with a traceback, until
    # someone deleted the tag by hand.
    import json

    training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.6, family="linear")
    record = {
        "lease": "0123456789abcdef:1.000",  # expired long ago: its writer is gone
        "kind": "promotion",
        "run_id": "0" * 32,
        "outcome": "champion",
        "version": "1",
        "alias": "champion",
        "replaced": None,
        "challenger": None,
        "history_key": "pricer.history.0",
        "at": "2026-12-07 06:00 UTC",
        "aliases": ["champion", "challenger"],
    }
    client.set_registered_model_tag(MODEL, "pricer.pending", json.dumps(record | edited))
    capsys.readouterr()

    decision = promote_with("candidates.family=linear")

    assert decision.outcome == "champion"
    assert aliases(client) == {"champion": version_of(client, better)}
    assert "pricer.pending" not in client.get_registered_model(MODEL).tags
    # Nothing in it was trusted: no record taken back or finished on its word.
    assert "stopped" not in capsys.readouterr().out
