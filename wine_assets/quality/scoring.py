"""Score a window of readings and write the scores back, the write overlapping the predicting.

Prediction walks the forest on every core; the store's write is one thread's work (~2 s per
million rows on SQLite). Done one after the other, a core idles for the whole write. Here the
rows are scored in parts and each part's write runs on a writer thread while the next part is
predicted; the parts go into one store batch, so the write-back stays all or nothing.
"""

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd

from wine_assets.quality import model as wine_model
from wine_assets.readings.store import PredictionBatch

#: Rows per part: large enough that the forest's per-call costs vanish, small enough that the
#: last part's write (the one nothing overlaps) is short.
PART_ROWS = 131_072


def score_and_write(
    fitted: wine_model.FittedModel,
    todo: pd.DataFrame,
    write: np.ndarray,
    batch: PredictionBatch,
    part_rows: int = PART_ROWS,
) -> np.ndarray:
    """Predicted quality of every row of ``todo`` (ordered by seq); the rows where ``write`` is
    true go to ``batch`` (ids, qualities, seqs), part by part. Any failure, in a prediction or
    a write, is raised here (the caller's batch then writes nothing)."""
    quality = np.empty(len(todo), dtype=np.float64)
    ids = todo["barrel_id"]  # a Series: Arrow-backed ids reach the store's checks uncopied
    seqs = todo["seq"].to_numpy()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prediction-writer") as writer:
        pending: Future | None = None
        for start in range(0, len(todo), part_rows):
            part = slice(start, start + part_rows)
            quality[part] = wine_model.predict(fitted, todo.iloc[part])
            if pending is not None:
                pending.result()  # one write in flight: a failed part stops the scoring
            keep = write[part]
            pending = writer.submit(
                batch.add, ids.iloc[part][keep], quality[part][keep], seqs[part][keep]
            )
        if pending is not None:
            pending.result()
    return quality
