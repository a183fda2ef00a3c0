"""The ``cluster_predictions`` table in PostgreSQL (as the original clustering pipeline kept
it): the profile of every sensor-day.

The table holds the current assignment of each (sensor, day) and the run that wrote it. A run
replaces its days in one transaction (delete the days, COPY the new rows), so a re-run or a
backfill over the same range never duplicates rows and readers never see half a day.
"""

from __future__ import annotations

import io
from contextlib import closing
from datetime import date

import pandas as pd

TABLE = "cluster_predictions"
COLUMNS = ("sensor_id", "day", "profile", "distance", "model_version", "run_id", "assigned_at")
DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (\n"
    "  sensor_id TEXT NOT NULL,\n  day DATE NOT NULL,\n  profile INTEGER,\n"
    "  distance DOUBLE PRECISION,\n  model_version INTEGER NOT NULL,\n  run_id TEXT NOT NULL,\n"
    "  assigned_at TIMESTAMPTZ NOT NULL,\n  PRIMARY KEY (day, sensor_id)\n)"
)


def replace_days(dsn: str, assignments: pd.DataFrame, first: date, last: date) -> int:
    """Replace every row of days ``first``..``last`` by ``assignments``; the rows written."""
    import psycopg2

    missing = [c for c in COLUMNS if c not in assignments.columns]
    if missing:
        raise ValueError(f"{TABLE}: assignments lack columns {missing}")
    frame = assignments[list(COLUMNS)].copy()
    frame["sensor_id"] = frame["sensor_id"].astype("string")
    frame["profile"] = frame["profile"].astype("Int64")
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, na_rep="")
    buf.seek(0)
    # One transaction (``with conn``): the days change all at once; then the connection closes.
    with closing(psycopg2.connect(dsn, connect_timeout=10)) as conn, conn, conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute(f"DELETE FROM {TABLE} WHERE day BETWEEN %s AND %s", (first, last))
        cur.copy_expert(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buf)
    return len(frame)


def read_days(dsn: str, first: date, last: date) -> pd.DataFrame:
    """The stored rows of ``first``..``last`` (for tests and inspection)."""
    import psycopg2

    with closing(psycopg2.connect(dsn, connect_timeout=10)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE day BETWEEN %s AND %s "
            "ORDER BY day, sensor_id",
            (first, last),
        )
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=list(COLUMNS))
