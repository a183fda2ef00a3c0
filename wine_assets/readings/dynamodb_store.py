"""DynamoDB backend of the readings store (production).

Layout (both tables PAY_PER_REQUEST):

- ``<table>``: one item per barrel, HASH key ``barrel_id``; features, ``temperature_c`` and
  ``seq`` are DynamoDB *numbers* (the old system's strings made every consumer parse and
  let ``"7,4"`` in); prediction attributes sit on the same item.
- GSI ``by_seq``: HASH ``shard`` (always ``"all"``), RANGE ``seq``, projection ALL. It turns
  the sensor's cursor question into ``Query shard = "all" AND seq > :cursor`` (ordered, paged)
  instead of a Scan. A single partition value takes ~1000 writes/s; 200 barrels every 10 s
  is 20/s. Past that, write ``shard`` = hash(barrel_id) % K and merge K queries.
- ``<table>-history``: every reading ever written (append-only), HASH ``shard`` (``"all"``),
  RANGE ``seq``, so ``history(after, upto)`` is one paged Query. Written before the current
  item, so a reading that loses the race to a newer one is still recorded.
- ``<table>-sequence``: one counter item. ``put`` reserves a block of seqs with a single
  atomic ``UpdateItem ADD last_value :n`` and writes each reading with its seq. The counter is
  in its own table, not a reserved key in ``<table>``, so Scans (``all``, ``count``) see only
  barrels and a barrel can never be named like the counter.

Writes never go backwards: each reading is written with ``UpdateItem`` conditioned on
``attribute_not_exists(seq) OR seq < :seq``, so a slow writer holding an older seq cannot
replace a newer reading (it is dropped and logged). ``UpdateItem`` (not ``PutItem``) keeps the
prediction attributes that live on the same item.

Caveats a consumer must know (inherent to DynamoDB, documented rather than hidden):

- allocation and write are two requests, so with concurrent writers a reading with a *lower*
  seq can become visible after a higher one; and GSI queries are eventually consistent.
  A sensor should re-read a small window behind its cursor and dedupe by (barrel_id, seq);
- a batch is validated all-or-nothing, but its writes are not one transaction (a network
  failure mid-batch leaves the earlier readings written; seqs may then have gaps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from wine_assets.readings.schema import NUMERIC_FIELDS, Prediction, Reading
from wine_assets.readings.store import (
    PredictionColumns,
    ReadingsStore,
    _check_cursor,
    _temperature_frame,
    _time_window,
    utc_now,
    validate_batch,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GSI_NAME", "SHARD", "DynamoDbReadingsStore"]

log = logging.getLogger(__name__)

GSI_NAME = "by_seq"
SHARD = "all"
SEQUENCE_KEY = "readings"
_READING_ATTRS = ("wine_type", *NUMERIC_FIELDS, "seq", "updated_at", "shard")
_PREDICTION_ATTRS = ("predicted_quality", "model_version", "reading_seq", "scored_at")


def _num(value: float | int) -> dict[str, str]:
    """A DynamoDB number; repr() is the shortest string that round-trips the float."""
    return {"N": repr(value) if isinstance(value, float) else str(int(value))}


def _str(value: str) -> dict[str, str]:
    return {"S": value}


def _float(attr: Mapping[str, str]) -> float:
    return float(Decimal(attr["N"]))


def _int(attr: Mapping[str, str]) -> int:
    return int(Decimal(attr["N"]))


class DynamoDbReadingsStore(ReadingsStore):
    """Readings in a DynamoDB table with a seq GSI and an atomic counter table."""

    def __init__(
        self,
        table: str,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        client: Any | None = None,
        max_workers: int = 8,
    ) -> None:
        self.table = table
        self.max_workers = max_workers
        self.sequence_table = f"{table}-sequence"
        self.history_table = f"{table}-history"
        self._client = client or boto3.client(
            "dynamodb", region_name=region, endpoint_url=endpoint_url
        )

    def __repr__(self) -> str:
        return f"DynamoDbReadingsStore({self.table!r})"

    # -- tables -------------------------------------------------------------------------

    def create(self) -> None:
        self._create_table(
            self.table,
            attributes=[("barrel_id", "S"), ("shard", "S"), ("seq", "N")],
            key="barrel_id",
            gsi=[
                {
                    "IndexName": GSI_NAME,
                    "KeySchema": [
                        {"AttributeName": "shard", "KeyType": "HASH"},
                        {"AttributeName": "seq", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        self._create_table(self.sequence_table, attributes=[("sequence_name", "S")], key=None)
        self._create_table(
            self.history_table, attributes=[("shard", "S"), ("seq", "N")], key="shard",
            range_key="seq",
        )  # fmt: skip
        for name in (self.table, self.sequence_table, self.history_table):
            self._wait_active(name)
        indexes = self._client.describe_table(TableName=self.table)["Table"].get(
            "GlobalSecondaryIndexes", []
        )
        if GSI_NAME not in {i["IndexName"] for i in indexes}:
            # A table made by another system (e.g. the old string-valued one): refuse rather
            # than silently Scan; migrating it is a deliberate step.
            raise RuntimeError(
                f"DynamoDB table {self.table!r} exists without the {GSI_NAME!r} index "
                "(shard HASH, seq RANGE); migrate it or use another table name"
            )

    def _create_table(
        self,
        name: str,
        attributes: list[tuple[str, str]],
        key: str | None,
        gsi: list[dict[str, Any]] | None = None,
        range_key: str | None = None,
    ) -> None:
        hash_key = key or attributes[0][0]
        key_schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            key_schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        params: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": [
                {"AttributeName": a, "AttributeType": t} for a, t in attributes
            ],
            "KeySchema": key_schema,
            "BillingMode": "PAY_PER_REQUEST",
        }
        if gsi:
            params["GlobalSecondaryIndexes"] = gsi
        try:
            self._client.create_table(**params)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise

    def _wait_active(self, name: str, timeout_s: float = 300.0) -> None:
        """Until the table and all its GSIs are ACTIVE (a new GSI backfills after the table)."""
        deadline = time.monotonic() + timeout_s
        while True:
            desc = self._client.describe_table(TableName=name)["Table"]
            statuses = [desc["TableStatus"]] + [
                i["IndexStatus"] for i in desc.get("GlobalSecondaryIndexes", [])
            ]
            if all(s == "ACTIVE" for s in statuses):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DynamoDB table {name!r} not ACTIVE after {timeout_s}s")
            time.sleep(1.0)

    # -- writes -------------------------------------------------------------------------

    def _allocate(self, n: int) -> list[int]:
        """Reserve ``n`` consecutive seqs with one atomic ADD on the counter item."""
        response = self._client.update_item(
            TableName=self.sequence_table,
            Key={"sequence_name": _str(SEQUENCE_KEY)},
            UpdateExpression="ADD #v :n",
            ExpressionAttributeNames={"#v": "last_value"},
            ExpressionAttributeValues={":n": _num(n)},
            ReturnValues="UPDATED_NEW",
        )
        last = _int(response["Attributes"]["last_value"])
        return list(range(last - n + 1, last + 1))

    def _write_reading(self, reading: Reading, seq: int, updated_at: str) -> bool:
        """Write one reading with its seq unless a newer one is stored; False when dropped."""
        names = {f"#a{i}": attr for i, attr in enumerate(_READING_ATTRS)}
        values: dict[str, Any] = {
            ":a0": _str(reading.wine_type),
            **{f":a{i + 1}": _num(getattr(reading, f)) for i, f in enumerate(NUMERIC_FIELDS)},
        }
        values[f":a{len(NUMERIC_FIELDS) + 1}"] = _num(seq)
        values[f":a{len(NUMERIC_FIELDS) + 2}"] = _str(updated_at)
        values[f":a{len(NUMERIC_FIELDS) + 3}"] = _str(SHARD)
        seq_name = f"#a{_READING_ATTRS.index('seq')}"
        seq_value = f":a{_READING_ATTRS.index('seq')}"
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"barrel_id": _str(reading.barrel_id)},
                UpdateExpression="SET " + ", ".join(f"{n} = :{n[1:]}" for n in names),
                ConditionExpression=(
                    f"attribute_not_exists({seq_name}) OR {seq_name} < {seq_value}"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            log.warning(
                "reading for %s with seq %d dropped: a newer reading is already stored",
                reading.barrel_id,
                seq,
            )
            return False
        return True

    def put(self, readings: Sequence[Reading | Mapping[str, Any]]) -> list[int]:
        parsed = validate_batch(readings)
        if not parsed:
            return []
        seqs = self._allocate(len(parsed))
        now = utc_now()
        self._append_history(parsed, seqs, now)
        # A barrel listed twice keeps its last reading (the higher seq): the earlier one would
        # be replaced at once anyway, and distinct barrels can then be written in parallel.
        latest = {r.barrel_id: (r, s) for r, s in zip(parsed, seqs, strict=True)}
        writes = list(latest.values())
        if self.max_workers <= 1 or len(writes) == 1:
            for reading, seq in writes:
                self._write_reading(reading, seq, now)
        else:
            # Requests are latency-bound: 200 barrels one after another take ~1–2 s on AWS.
            with ThreadPoolExecutor(min(self.max_workers, len(writes))) as pool:
                list(pool.map(lambda w: self._write_reading(w[0], w[1], now), writes))
        return seqs

    def _append_history(self, readings: list[Reading], seqs: list[int], now: str) -> None:
        """BatchWriteItem (25 items a request) into the history table, retrying leftovers."""
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "shard": _str(SHARD),
                        "seq": _num(seq),
                        "barrel_id": _str(r.barrel_id),
                        "wine_type": _str(r.wine_type),
                        **{f: _num(getattr(r, f)) for f in NUMERIC_FIELDS},
                        "updated_at": _str(now),
                    }
                }
            }
            for r, seq in zip(readings, seqs, strict=True)
        ]
        for start in range(0, len(items), 25):
            request = {self.history_table: items[start : start + 25]}
            for attempt in range(10):
                unprocessed = self._client.batch_write_item(RequestItems=request).get(
                    "UnprocessedItems"
                )
                if not unprocessed:
                    break
                request = unprocessed
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError(f"{self.history_table}: writes still unprocessed")

    def _write_predictions(self, columns: PredictionColumns) -> int:
        wanted = set(columns.barrel_id)
        missing = wanted - self._existing(wanted)
        if missing:
            raise KeyError(f"no reading for barrels {sorted(missing)[:20]}; nothing written")
        written = 0
        for barrel_id, quality, version, seq, scored_at in columns.rows():
            try:
                self._client.update_item(
                    TableName=self.table,
                    Key={"barrel_id": _str(barrel_id)},
                    UpdateExpression="SET #q = :q, #v = :v, #r = :r, #t = :t",
                    # Readings are never deleted, so existence was settled above; the
                    # condition only keeps an older scoring from replacing a newer one.
                    ConditionExpression="attribute_not_exists(#r) OR #r <= :r",
                    ExpressionAttributeNames={
                        "#q": "predicted_quality",
                        "#v": "model_version",
                        "#r": "reading_seq",
                        "#t": "scored_at",
                    },
                    ExpressionAttributeValues={
                        ":q": _num(quality),
                        ":v": _num(version),
                        ":r": _num(seq),
                        ":t": _str(scored_at),
                    },
                )
                written += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return written

    def _existing(self, barrel_ids: set[str]) -> set[str]:
        """Which of the barrels have an item (BatchGetItem, 100 keys per request)."""
        found: set[str] = set()
        ids = sorted(barrel_ids)
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"barrel_id": _str(b)} for b in ids[start : start + 100]],
                    "ProjectionExpression": "barrel_id",
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                found.update(i["barrel_id"]["S"] for i in response["Responses"][self.table])
                request = response.get("UnprocessedKeys") or {}
        return found

    # -- reads --------------------------------------------------------------------------

    def get(self, barrel_id: str) -> Reading | None:
        item = self._get_item(barrel_id)
        return _reading(item) if item else None

    def _get_item(self, barrel_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table, Key={"barrel_id": _str(barrel_id)}, ConsistentRead=True
        )
        return response.get("Item")

    def _scan(self, **params: Any) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True, **params}
        while True:
            response = self._client.scan(**kwargs)
            yield response
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def all(self) -> list[Reading]:
        items = [item for page in self._scan() for item in page["Items"]]
        return sorted((_reading(i) for i in items), key=lambda r: r.barrel_id)

    def changed_since(self, seq: int, limit: int | None = None) -> list[Reading]:
        _check_cursor(seq, limit)
        out: list[Reading] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": GSI_NAME,
            "KeyConditionExpression": "#s = :shard AND #q > :cursor",
            "ExpressionAttributeNames": {"#s": "shard", "#q": "seq"},
            "ExpressionAttributeValues": {":shard": _str(SHARD), ":cursor": _num(seq)},
            "ScanIndexForward": True,
        }
        while limit is None or len(out) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(out)
            response = self._client.query(**kwargs)
            out.extend(_reading(i) for i in response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return out

    def history(self, after: int, upto: int) -> list[Reading]:
        _check_cursor(after, None)
        _check_cursor(upto, None)
        if upto <= after:
            return []
        kwargs: dict[str, Any] = {
            "TableName": self.history_table,
            "KeyConditionExpression": "#s = :shard AND #q BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#s": "shard", "#q": "seq"},
            "ExpressionAttributeValues": {
                ":shard": _str(SHARD),
                ":lo": _num(after + 1),
                ":hi": _num(upto),
            },
            "ConsistentRead": True,
        }
        out: list[Reading] = []
        while True:
            response = self._client.query(**kwargs)
            out.extend(_reading(i) for i in response["Items"])
            if "LastEvaluatedKey" not in response:
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def max_seq(self) -> int:
        response = self._client.query(
            TableName=self.table,
            IndexName=GSI_NAME,
            KeyConditionExpression="#s = :shard",
            ExpressionAttributeNames={"#s": "shard"},
            ExpressionAttributeValues={":shard": _str(SHARD)},
            ScanIndexForward=False,
            Limit=1,
        )
        items = response["Items"]
        return _int(items[0]["seq"]) if items else 0

    def get_prediction(self, barrel_id: str) -> Prediction | None:
        item = self._get_item(barrel_id)
        return _prediction(item) if item and "predicted_quality" in item else None

    def predictions(self) -> list[Prediction]:
        pages = self._scan(
            FilterExpression="attribute_exists(#q)",
            ExpressionAttributeNames={"#q": "predicted_quality"},
        )
        items = [item for page in pages for item in page["Items"]]
        return sorted((_prediction(i) for i in items), key=lambda p: p.barrel_id)

    def count(self) -> int:
        return sum(page["Count"] for page in self._scan(Select="COUNT"))

    def close(self) -> None:
        self._client.close()

    def temperature_history(self, start: str | datetime, end: str | datetime) -> pd.DataFrame:
        """A paged Query of the history table with a FilterExpression on ``updated_at``: it
        reads the whole history partition (filtering happens after the read, so the cost and
        the read capacity grow with all history, not with the window; a time-keyed index
        would be the fix when that matters)."""
        lo, hi = _time_window(start, end)
        kwargs: dict[str, Any] = {
            "TableName": self.history_table,
            "KeyConditionExpression": "#s = :shard",
            "FilterExpression": "#u >= :lo AND #u < :hi",
            "ProjectionExpression": "#b, #u, #t",
            "ExpressionAttributeNames": {
                "#s": "shard",
                "#u": "updated_at",
                "#b": "barrel_id",
                "#t": "temperature_c",
            },
            "ExpressionAttributeValues": {":shard": _str(SHARD), ":lo": _str(lo), ":hi": _str(hi)},
            "ConsistentRead": True,
        }
        rows: list[tuple[str, str, float]] = []
        while True:
            response = self._client.query(**kwargs)
            rows.extend(
                (i["barrel_id"]["S"], i["updated_at"]["S"], _float(i["temperature_c"]))
                for i in response["Items"]
            )
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        rows.sort(key=lambda row: row[1])  # stable: seq order within one stamp, as on SQLite
        return _temperature_frame(rows)


def _reading(item: Mapping[str, Any]) -> Reading:
    return Reading(
        barrel_id=item["barrel_id"]["S"],
        wine_type=item["wine_type"]["S"],
        **{name: _float(item[name]) for name in NUMERIC_FIELDS},
        seq=_int(item["seq"]),
        updated_at=item["updated_at"]["S"],
    )


def _prediction(item: Mapping[str, Any]) -> Prediction:
    return Prediction(
        barrel_id=item["barrel_id"]["S"],
        predicted_quality=_float(item["predicted_quality"]),
        model_version=_int(item["model_version"]),
        reading_seq=_int(item["reading_seq"]),
        scored_at=item["scored_at"]["S"],
    )
