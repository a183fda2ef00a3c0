"""Scoring in parts with an overlapping write-back: same scores, newest per barrel, all or
nothing (SQLite writes each part inside one transaction; DynamoDB at the end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.wine.conftest import reading
from wine_assets.features import FEATURES, read_uci
from wine_assets.quality import model as wq
from wine_assets.quality.scoring import score_and_write
from wine_assets.readings.sqlite_store import SqliteReadingsStore
from wine_assets.readings.store import ReadingsStore, utc_now


@pytest.fixture(scope="module")
def fitted(data_dir) -> wq.FittedModel:
    uci = read_uci(data_dir)
    return wq.fit(wq.with_hyperparameters(wq.CANDIDATE_SPEC, n_estimators=10), uci.iloc[::4])


def seed(store: ReadingsStore, barrels: int, rounds: int) -> pd.DataFrame:
    """``rounds`` readings per barrel (all but the last superseded), as the snapshot holds
    them: ordered by seq, with ``current`` marking each barrel's newest."""
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        store.put(
            [
                reading(f"barrel-{i:03d}", ph=float(rng.uniform(2.9, 3.8)), wine_type=t)
                for i, t in zip(range(barrels), np.resize(["red", "white"], barrels), strict=True)
            ]
        )
    todo = pd.DataFrame([r.to_dict() for r in store.history(0, store.max_seq())])
    todo["current"] = ~todo["barrel_id"].duplicated(keep="last")
    return todo


def test_parts_score_like_one_call_and_store_the_newest(
    store: ReadingsStore, fitted: wq.FittedModel
) -> None:
    todo = seed(store, barrels=60, rounds=3)
    newest = todo["current"].to_numpy()
    at = utc_now()
    with store.prediction_batch(model_version=7, scored_at=at) as batch:
        quality = score_and_write(fitted, todo, newest, batch, part_rows=25)
    np.testing.assert_array_equal(quality, wq.predict(fitted, todo[["wine_type", *FEATURES]]))
    assert batch.rows == batch.written == 60
    stored = {p.barrel_id: p for p in store.predictions()}
    for row, q in zip(todo[newest].itertuples(), quality[newest], strict=True):
        assert (stored[row.barrel_id].reading_seq, stored[row.barrel_id].predicted_quality) == (
            row.seq,
            q,
        )
        assert stored[row.barrel_id].model_version == 7


def test_a_failing_part_stops_the_scoring_and_writes_nothing(
    store: ReadingsStore, fitted: wq.FittedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    todo = seed(store, barrels=40, rounds=1)
    todo.loc[15, "barrel_id"] = "barrel-404"  # no such barrel: the 2nd part's write fails
    calls: list[int] = []
    predict = wq.predict

    def counting(model: wq.FittedModel, frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return predict(model, frame)

    monkeypatch.setattr(wq, "predict", counting)
    with (
        pytest.raises(KeyError, match="barrel-404"),
        store.prediction_batch(model_version=1, scored_at=utc_now()) as batch,
    ):
        score_and_write(fitted, todo, np.ones(len(todo), bool), batch, part_rows=10)
    assert store.predictions() == []
    if isinstance(store, SqliteReadingsStore):
        # The 2nd part's write failed while the 3rd was predicted; the 4th never was.
        assert calls == [10, 10, 10]
    else:  # DynamoDB checks the barrels when the batch ends
        assert calls == [10, 10, 10, 10]
