"""The beer graph in Dagster: end to end on real data, and its checks on planted bad data."""

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from beer_assets.definitions import defs
from beer_assets.ibu import MODEL_NAME
from beer_assets.ibu import model as ibu
from beer_assets.ibu.assets import CHAMPION, train_run_config
from beer_assets.ingest import assets as ingest
from beer_assets.ingest.landing import RAW_PREFIX, land
from beer_assets.punkapi.client import FetchResult, PunkApiClient, PunkApiError
from beer_assets.punkapi.resource import PunkApiResource
from beer_assets.punkapi.server import FaultPlan, FaultRule
from platform_core.champion import champion_run_config
from platform_core.registry import ChecksumMismatchError, ModelRegistry, Status
from platform_core.resources import shared_resources
from platform_core.storage import PlatformStorage
from tests.conftest import s3_storage

ALL_ASSETS = list(defs.assets)
ALL_CHECKS = list(defs.asset_checks)
FAST_TRAIN = train_run_config(1)


def resources(storage: PlatformStorage, api_url: str, approval: str = "auto") -> dict:
    return {
        **shared_resources(storage=storage, approval=approval),
        "punk_api": PunkApiResource(base_url=api_url, max_requests_per_hour=0, timeout_s=2),
    }


def plant_landing(storage: PlatformStorage, bodies: list[bytes], at: datetime) -> None:
    """A crawl landing of ``bodies`` (pages + manifest, as the raw asset writes them)."""
    land(storage, FetchResult(raw_pages=bodies), mode="crawl", run_id="planted", at=at)


def run_graph(storage, api_url, instance, approval="auto", selection=None, raise_on_error=True):
    return dg.materialize(
        ALL_ASSETS + ALL_CHECKS,
        resources=resources(storage, api_url, approval),
        instance=instance,
        run_config=FAST_TRAIN if selection is None else None,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def check_results(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def failed_errors(result) -> list[str]:
    return [
        name
        for name, e in check_results(result).items()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_whole_graph_over_http_with_faults_into_s3(moto_endpoint, punkapi_server_factory):
    """325 beers through a flaky API into S3; every ERROR check passes; 5 null IBUs filled."""
    server = punkapi_server_factory(
        FaultPlan(server_error=FaultRule(every_nth=3), truncated=FaultRule(every_nth=4))
    )
    storage = s3_storage(moto_endpoint)
    with dg.instance_for_test() as instance:
        result = run_graph(storage, server.url, instance)
        assert result.success
        assert failed_errors(result) == []
        assert materialized(result) == {
            "punkapi_raw_beers",
            "beers_clean",
            "punkapi_quarantine",
            "ibu_model_candidate",
            "ibu_model_champion",
            "ibu_predictions",
        }
    raw_meta = result.asset_materializations_for_node("punkapi_raw_beers")[0].metadata
    assert raw_meta["retries"].value > 0
    clean = storage.read_parquet("tables/beers_clean.parquet")
    assert len(clean) == 325 and clean["id"].is_unique
    preds = storage.read_parquet("tables/ibu_predictions.parquet")
    assert len(preds) == 325
    assert preds["ibu_filled"].notna().all()
    assert int(preds["ibu_published"].isna().sum()) == 5
    assert (preds["model_version"] == 1).all()
    assert ModelRegistry(storage, MODEL_NAME).champion().version == 1
    assert storage.list_keys(RAW_PREFIX)  # raw landing is in the bucket too


def test_planted_bad_items_are_quarantined_with_reasons(local_storage, data_dir):
    beers = json.loads((data_dir / "punkapi" / "beers.json").read_text())
    bad_abv = {**beers[0], "abv": -1.0}
    no_id = {k: v for k, v in beers[1].items() if k != "id"}
    plant_landing(
        local_storage,
        [json.dumps(beers[:10]).encode(), json.dumps([bad_abv, no_id]).encode()]
        + [b'[{"id": 1, "na'],  # truncated
        at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=dg.AssetSelection.assets("beers_clean", "punkapi_quarantine"),
            resources=resources(local_storage, "file:///unused"),
            instance=instance,
            raise_on_error=False,
        )
    quarantine = local_storage.read_parquet("tables/punkapi_quarantine.parquet")
    assert len(quarantine) == 3
    reasons = " | ".join(quarantine["reasons"])
    assert "abv" in reasons and "id" in reasons and "not valid JSON" in reasons
    # 3 of 13 items is far over the 5 % limit: the blocking check fails with ERROR.
    share = check_results(result)["quarantine_share_below_threshold"]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.ERROR
    clean = local_storage.read_parquet("tables/beers_clean.parquet")
    assert sorted(clean["id"]) == list(range(1, 11))  # first record's good version kept


def test_blocking_check_stops_the_model(local_storage, punkapi_server):
    """A planted invalid landing pushes the quarantine share over the limit: no model trains."""
    junk = [{"id": i, "name": "junk"} for i in range(1000, 1100)]
    plant_landing(local_storage, [json.dumps(junk).encode()], at=datetime(2000, 1, 1, tzinfo=UTC))
    with dg.instance_for_test() as instance:
        result = run_graph(local_storage, punkapi_server.url, instance, raise_on_error=False)
    assert "quarantine_share_below_threshold" in failed_errors(result)
    assert "ibu_model_candidate" not in materialized(result)
    assert "ibu_predictions" not in materialized(result)


@pytest.mark.parametrize(
    ("check", "plant"),
    [
        (ingest.ids_unique_and_present, lambda df: pd.concat([df, df.head(2)])),
        (ingest.values_in_physical_range, lambda df: df.assign(abv=-df["abv"])),
        (ingest.values_in_physical_range, lambda df: df.assign(ibu=df["ibu"] - 1000)),
        (ingest.values_plausible, lambda df: df.assign(ph=df["ph"] * 10)),
    ],
)
def test_checks_fail_with_error_on_planted_rows(check, plant, clean_table):
    before = check(clean_table)  # type: ignore[call-arg]
    assert before.passed or before.severity == dg.AssetCheckSeverity.WARN
    result = check(plant(clean_table))  # type: ignore[call-arg]
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR


def test_known_source_errors_only_warn(clean_table):
    """The real dump has 13 swapped gravities and one pH of 79: listed, WARN, not ERROR."""
    result = ingest.values_plausible(clean_table)  # type: ignore[call-arg]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert 317 in result.metadata["ph outside [2, 7]"].value
    assert len(result.metadata["target_og < target_fg"].value) == 13


@pytest.fixture(scope="module")
def clean_table(data_dir) -> pd.DataFrame:
    from beer_assets.ingest.clean import clean_beers

    return clean_beers(json.loads((data_dir / "punkapi" / "beers.json").read_text()))


INGEST = dg.AssetSelection.assets("punkapi_raw_beers", "beers_clean", "punkapi_quarantine")
CLEAN_ONLY = dg.AssetSelection.assets("beers_clean", "punkapi_quarantine")
ROW_COUNT_OP = "beers_clean_row_count_not_falling"


def test_lost_raw_data_fails_row_count_and_blocks(local_storage, punkapi_server, data_dir):
    """The landing is lost and replaced by one holding 300 of the 325 beers: plenty to train
    on, so only the blocking row-count check can keep the model from training on the loss.
    The model's step never starts, and the run's one failure is that check's."""
    beers = json.loads((data_dir / "punkapi" / "beers.json").read_text())
    with dg.instance_for_test() as instance:
        first = run_graph(local_storage, punkapi_server.url, instance, selection=INGEST)
        assert check_results(first)["row_count_not_falling"].passed
        for key in local_storage.list_keys(RAW_PREFIX):
            local_storage.delete(key)
        plant_landing(
            local_storage, [json.dumps(beers[:300]).encode()], at=datetime(2024, 1, 1, tzinfo=UTC)
        )
        result = dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=dg.AssetSelection.all() - dg.AssetSelection.assets("punkapi_raw_beers"),
            resources=resources(local_storage, punkapi_server.url),
            instance=instance,
            run_config=FAST_TRAIN,  # were the model to train (it must not), train it quickly
            raise_on_error=False,
        )
    assert not result.success
    row_count = check_results(result)["row_count_not_falling"]
    assert (row_count.metadata["rows"].value, row_count.metadata["previous_rows"].value) == (
        300,
        325,
    )
    assert failed_errors(result) == ["row_count_not_falling"]  # every other ERROR check passed
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [(e.step_key, e.step_failure_data.error.cls_name) for e in failures] == [
        (ROW_COUNT_OP, "DagsterAssetCheckFailedError")
    ]
    assert "row_count_not_falling" in failures[0].step_failure_data.error.message
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert ROW_COUNT_OP in started
    assert not started & {"ibu_model_candidate", "ibu_model_champion", "ibu_predictions"}
    assert "ibu_model_candidate" not in materialized(result)
    assert ModelRegistry(local_storage, MODEL_NAME).versions() == []


def test_row_count_loss_is_not_accepted_by_re_running(local_storage, punkapi_server, data_dir):
    """325 -> 300 rows fails, and so does every re-run at 300 (a failed run's materialization
    is recorded, but it is not the baseline); only an explicit accepted_row_count lets it pass.
    """
    beers = json.loads((data_dir / "punkapi" / "beers.json").read_text())

    def clean_run(instance, accepted: int | None = None):
        config = {} if accepted is None else {"accepted_row_count": accepted}
        result = dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=CLEAN_ONLY,
            resources=resources(local_storage, punkapi_server.url),
            instance=instance,
            run_config={"ops": {ROW_COUNT_OP: {"config": config}}},
            raise_on_error=False,
        )
        return result, check_results(result)["row_count_not_falling"]

    with dg.instance_for_test() as instance:
        first = run_graph(local_storage, punkapi_server.url, instance, selection=INGEST)
        assert check_results(first)["row_count_not_falling"].passed
        assert len(local_storage.read_parquet("tables/beers_clean.parquet")) == 325
        # the landing is lost and replaced by one holding only 300 of the beers
        for key in local_storage.list_keys(RAW_PREFIX):
            local_storage.delete(key)
        plant_landing(
            local_storage, [json.dumps(beers[:300]).encode()], at=datetime(2024, 1, 1, tzinfo=UTC)
        )

        for attempt in range(2):  # the drop, then a re-run of the same 300 rows
            result, check = clean_run(instance)
            assert "beers_clean" in materialized(result), attempt  # recorded all the same
            assert not check.passed, attempt
            assert check.severity == dg.AssetCheckSeverity.ERROR
            assert check.metadata["rows"].value == 300
            assert check.metadata["previous_rows"].value == 325

        # accepting some other count does not accept this shrink
        _, check = clean_run(instance, accepted=299)
        assert not check.passed
        # the operator accepts the intended shrink; it is the baseline from then on
        _, check = clean_run(instance, accepted=300)
        assert check.passed
        _, check = clean_run(instance)
        assert check.passed and check.metadata["previous_rows"].value == 300


def test_row_count_baseline_without_a_passing_check_is_the_largest_earlier_count():
    """With no passing evaluation on record, the baseline is the most rows any earlier
    materialization had (the latest, being checked, excluded), not merely the previous one."""
    with dg.instance_for_test() as instance:
        assert ingest._baseline_row_count(instance)[0] is None
        for rows in (325, 300, 290):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(ingest.CLEAN, metadata={"dagster/row_count": rows})
            )
        assert ingest._baseline_row_count(instance) == (325, "largest earlier materialization")


@pytest.mark.parametrize("fails", [False, True])
def test_raw_landing_closes_its_api_client(local_storage, punkapi_server, monkeypatch, fails):
    """The client (and its HTTP session) is closed after the poll, also when the poll fails."""
    closed: list[PunkApiClient] = []
    close = PunkApiClient.close
    monkeypatch.setattr(PunkApiClient, "close", lambda self: (closed.append(self), close(self)))
    if fails:

        def broken(self):
            raise PunkApiError("planted", url=self.base_url)

        monkeypatch.setattr(PunkApiClient, "random", broken)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=dg.AssetSelection.assets("punkapi_raw_beers"),
            resources=resources(local_storage, punkapi_server.url),
            instance=instance,
            run_config={"ops": {"punkapi_raw_beers": {"config": {"mode": "random"}}}},
            raise_on_error=False,
        )
    assert result.success is not fails
    assert len(closed) == 1


def test_same_recipe_same_data_is_refused_and_champion_keeps_serving(local_storage, punkapi_server):
    with dg.instance_for_test() as instance:
        assert run_graph(local_storage, punkapi_server.url, instance).success
        second = run_graph(local_storage, punkapi_server.url, instance)
    reg = ModelRegistry(local_storage, MODEL_NAME)
    assert [v.status for v in reg.versions()] == [Status.CHAMPION, Status.REJECTED]
    assert check_results(second)["candidate_gate"].passed  # no worse than the old model
    decision = second.asset_materializations_for_node("ibu_model_champion")[0].metadata
    assert (decision["decision"].value, decision["champion_version"].value) == ("rejected", 1)
    assert "does not beat" in decision["reason"].value
    preds = local_storage.read_parquet("tables/ibu_predictions.parquet")
    assert (preds["model_version"] == 1).all()


def reserialised_spec(storage: PlatformStorage, registry: ModelRegistry, version: int) -> str:
    """spec.json written again with other whitespace: the same model, other bytes."""
    key = registry.file_key(version, ibu.SPEC_FILE)
    storage.write_bytes(key, json.dumps(json.loads(storage.read_bytes(key))).encode())
    return ibu.SPEC_FILE


def other_versions_booster(storage: PlatformStorage, registry: ModelRegistry, version: int) -> str:
    """The booster of another registered version (trained on 200 of the beers) copied over
    the champion's: a valid model, just not the one that was evaluated and promoted."""
    clean = storage.read_parquet("tables/beers_clean.parquet")
    other = registry.register(
        ibu.to_files(ibu.fit(ibu.CANDIDATE_SPEC, clean.head(200))), metrics={}, params={}
    )
    name = "booster_0.json"
    storage.write_bytes(
        registry.file_key(version, name), storage.read_bytes(registry.file_key(other.version, name))
    )
    return name


def root_cause(error) -> object:
    while error.cause is not None:
        error = error.cause
    return error


@pytest.mark.parametrize("tamper", [reserialised_spec, other_versions_booster])
def test_tampered_champion_is_refused(local_storage, punkapi_server, tamper):
    """The champion's files are changed in ways that still load and predict: only the
    checksum check can refuse them, and the run's failure must be that refusal."""
    predict_only = dg.AssetSelection.assets("ibu_predictions")
    with dg.instance_for_test() as instance:
        assert run_graph(local_storage, punkapi_server.url, instance).success
        reg = ModelRegistry(local_storage, MODEL_NAME)
        champion = reg.champion()
        keys = {name: reg.file_key(champion.version, name) for name in champion.files}
        intact = {name: local_storage.read_bytes(key) for name, key in keys.items()}
        tampered = tamper(local_storage, reg, champion.version)
        files = {name: local_storage.read_bytes(key) for name, key in keys.items()}
        assert files[tampered] != intact[tampered]
        clean = local_storage.read_parquet("tables/beers_clean.parquet")
        assert len(ibu.predict(ibu.from_files(files), clean)) == 325  # still a working model
        result = run_graph(
            local_storage,
            punkapi_server.url,
            instance,
            raise_on_error=False,
            selection=predict_only,
        )
        assert not result.success
        assert "ibu_predictions" not in materialized(result)
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "ibu_predictions"
        cause = root_cause(failure.step_failure_data.error)
        assert cause.cls_name == ChecksumMismatchError.__name__
        assert f"{champion.label}/{tampered}" in cause.message
        # the intact files are served again: the tampering was the only reason to refuse
        local_storage.write_bytes(keys[tampered], intact[tampered])
        again = run_graph(local_storage, punkapi_server.url, instance, selection=predict_only)
        assert again.success
    assert reg.champion().version == champion.version


def test_manual_approval_keeps_candidate_pending(local_storage, punkapi_server):
    with dg.instance_for_test() as instance:
        result = run_graph(
            local_storage, punkapi_server.url, instance, approval="manual", raise_on_error=False
        )
        reg = ModelRegistry(local_storage, MODEL_NAME)
        assert reg.get(1).status == Status.PENDING_APPROVAL
        assert "ibu_predictions" not in materialized(result)  # no champion to score with
        # Approval: the champion (and the predictions after it) with the approver's config.
        again = dg.materialize(
            ALL_ASSETS + ALL_CHECKS,
            selection=dg.AssetSelection.assets("ibu_model_champion", "ibu_predictions"),
            resources=resources(local_storage, punkapi_server.url, "manual"),
            instance=instance,
            run_config=champion_run_config(CHAMPION, 1, "brewer"),
        )
    assert again.success
    assert reg.champion().version == 1
    assert reg.get(1).history[-1]["by"] == "brewer"
