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
  item, so a reading that loses the race to a newer one is still recorded. Each item also
  carries ``day``, the UTC date of its ``updated_at`` (``"2023-02-16"``).
- GSI ``by_day`` on the history table: HASH ``day``, RANGE ``updated_at``, projecting
  ``barrel_id`` and ``temperature_c`` (plus the table keys, ``seq`` among them). It turns
  ``temperature_history(start, end)`` into one Query per UTC day the window touches with a key
  condition on ``updated_at``, so a read costs what the window holds, not all history (see
  ``temperature_history`` for why a day and what the index's eventual consistency means).
  ``create()`` adds it to a history table made before it and backfills ``day`` on the items
  written before it (``backfill_history_days``).
- TTL on the history table (attribute ``expires_at``, epoch seconds, set on write): an item
  expires ``READINGS_RETENTION_DAYS`` + ``TTL_GRACE_DAYS`` days after its UTC day ends. The
  daily archive (``wine_assets.retention``) copies each closed day to parquet and deletes the
  day's items itself once they are past the retention and verified in the archive; the TTL is
  the backstop, ``TTL_GRACE_DAYS`` later, for what a stopped archive would leave. The current
  item of each barrel (``<table>``) has no TTL and is never deleted.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from platform_core.settings import DEFAULT_READINGS_RETENTION_DAYS, retention_days
from wine_assets.readings.schema import NUMERIC_FIELDS, Prediction, Reading
from wine_assets.readings.store import (
    PredictionColumns,
    ReadingsStore,
    _check_cursor,
    _chunks,
    _history_frame,
    _temperature_frame,
    _time_window,
    utc_now,
    validate_batch,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DAY_GSI_NAME", "GSI_NAME", "SHARD", "DynamoDbReadingsStore", "batch_write"]

log = logging.getLogger(__name__)

GSI_NAME = "by_seq"
SHARD = "all"
SEQUENCE_KEY = "readings"
DAY_GSI_NAME = "by_day"
#: The item in the sequence table that records a finished ``day`` backfill (``upto``: the
#: highest history seq it looked at). Its absence means older items may lack ``day``.
DAY_BACKFILL_KEY = "history-day-backfill"
#: A new index on a big table is built (backfilled by DynamoDB) before it turns ACTIVE.
INDEX_BUILD_TIMEOUT_S = 3600.0
_DAY_INDEX: dict[str, Any] = {
    "IndexName": DAY_GSI_NAME,
    "KeySchema": [
        {"AttributeName": "day", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ],
    # Only what temperature_history returns: the index holds every reading again, and ALL
    # would copy all ~18 attributes of each one instead of these and the keys.
    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["barrel_id", "temperature_c"]},
}
_HISTORY_ATTRIBUTES = [("shard", "S"), ("seq", "N"), ("day", "S"), ("updated_at", "S")]
_READING_ATTRS = ("wine_type", *NUMERIC_FIELDS, "seq", "updated_at", "shard")
_PREDICTION_ATTRS = ("predicted_quality", "model_version", "reading_seq", "scored_at")
#: The history items' TTL attribute (epoch seconds) and how long after the retention it fires.
TTL_ATTRIBUTE = "expires_at"
TTL_GRACE_DAYS = 2
#: Items per BatchWriteItem request (DynamoDB's limit).
BATCH_ITEMS = 25
#: Up to this many handed-out seqs, ``history_frame`` reads them by key (one BatchGetItem):
#: its cost follows the keys, where a Query's on moto follows the whole table. On AWS a key
#: costs a read unit where a Query costs one per 4 KB: 10 units a second at 100 barrels a tick.
KEYED_READS = 100
#: Concurrent requests one store's client serves (botocore's default pool holds 10): the
#: scorer's 32 commit requests at once (``ledger.WORKERS``), its loop and its read-ahead.
POOL = 34
#: botocore's standard retries (throttling, RequestLimitExceeded, 5xx, timeouts) with backoff
#: and jitter, as many attempts as its legacy DynamoDB policy made.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=POOL)


def _num(value: float | int) -> dict[str, str]:
    """A DynamoDB number; repr() is the shortest string that round-trips the float."""
    return {"N": repr(value) if isinstance(value, float) else str(int(value))}


def _str(value: str) -> dict[str, str]:
    return {"S": value}


def _day(updated_at: str) -> str:
    """The UTC date of a stored stamp: the history item's ``day`` (its by_day partition)."""
    moment = datetime.fromisoformat(updated_at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date().isoformat()


def _days(lo: str, hi: str) -> list[str]:
    """The UTC days that ``[lo, hi)`` (``_time_window``'s UTC stamps) touches, in order; none
    when empty. An end at midnight does not touch the day it opens."""
    if hi <= lo:
        return []
    first = datetime.fromisoformat(lo).date()
    last = (datetime.fromisoformat(hi) - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _float(attr: Mapping[str, str]) -> float:
    return float(Decimal(attr["N"]))


def _int(attr: Mapping[str, str]) -> int:
    return int(Decimal(attr["N"]))


class DynamoDbReadingsStore(ReadingsStore):
    """Readings in a DynamoDB table with a seq GSI and an atomic counter table."""

    #: Items per Query page on the by_day index; None is DynamoDB's 1 MB page (tests set it
    #: to make the paging run on a few items).
    _page_items: int | None = None

    def __init__(
        self,
        table: str,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        client: Any | None = None,
        max_workers: int = 8,
        history_retention_days: int | None = None,
    ) -> None:
        self.table = table
        self.max_workers = max_workers
        #: Days a history item is kept (its TTL adds ``TTL_GRACE_DAYS``).
        self.history_retention_days = history_retention_days or retention_days(
            "READINGS_RETENTION_DAYS", DEFAULT_READINGS_RETENTION_DAYS
        )
        self.sequence_table = f"{table}-sequence"
        self.history_table = f"{table}-history"
        self._days_backfilled = False  # cached once seen: the marker is never removed
        #: The highest counter value read: the counter never goes down.
        self._reserved_seen = 0
        self._client = client or boto3.client(
            "dynamodb", region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
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
            self.history_table, attributes=_HISTORY_ATTRIBUTES, key="shard", range_key="seq",
            gsi=[_DAY_INDEX],
        )  # fmt: skip
        tables = {
            name: self._wait_active(name)
            for name in (self.table, self.sequence_table, self.history_table)
        }
        if GSI_NAME not in _index_names(tables[self.table]):
            # A table made by another system (e.g. the old string-valued one): refuse rather
            # than silently Scan; migrating it is a deliberate step.
            raise RuntimeError(
                f"DynamoDB table {self.table!r} exists without the {GSI_NAME!r} index "
                "(shard HASH, seq RANGE); migrate it or use another table name"
            )
        if DAY_GSI_NAME not in _index_names(tables[self.history_table]):
            self._add_day_index()
        self._enable_ttl()
        if not self._days_complete():
            self.backfill_history_days(after=0)

    def _enable_ttl(self, table: str | None = None) -> None:
        """Turn on TTL (``expires_at``) on ``table`` (default: the history table) unless it
        already is."""
        table = table or self.history_table
        status = self._client.describe_time_to_live(TableName=table)
        spec = status.get("TimeToLiveDescription", {})
        if spec.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if spec.get("AttributeName") != TTL_ATTRIBUTE:
                raise RuntimeError(
                    f"{table}: TTL is on attribute {spec.get('AttributeName')!r}, "
                    f"expected {TTL_ATTRIBUTE!r}; change it in DynamoDB or use another table"
                )
            return
        self._client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )

    def expires_at(self, updated_at: str) -> int:
        """A history item's TTL: the end of its UTC day plus the retention and the grace."""
        day = datetime.fromisoformat(_day(updated_at)).replace(tzinfo=UTC)
        days = 1 + self.history_retention_days + TTL_GRACE_DAYS
        return int((day + timedelta(days=days)).timestamp())

    def _add_day_index(self) -> None:
        """Add the by_day index to a history table made before it: UpdateTable, then wait
        while DynamoDB builds it. Another process adding it at the same moment makes our
        request fail; that is fine once the index is there."""
        try:
            self._client.update_table(
                TableName=self.history_table,
                AttributeDefinitions=[
                    {"AttributeName": a, "AttributeType": t} for a, t in _HISTORY_ATTRIBUTES
                ],
                GlobalSecondaryIndexUpdates=[{"Create": _DAY_INDEX}],
            )
        except ClientError:
            if not self._has_day_index():
                raise
        log.info("%s: adding the %s index", self.history_table, DAY_GSI_NAME)
        self._wait_active(self.history_table, timeout_s=INDEX_BUILD_TIMEOUT_S)

    def _has_day_index(self) -> bool:
        table = self._client.describe_table(TableName=self.history_table)["Table"]
        return DAY_GSI_NAME in _index_names(table)

    def _days_complete(self) -> bool:
        """Whether every history item has ``day`` (the backfill marker exists), so the by_day
        index holds all history; one GetItem, then cached."""
        if not self._days_backfilled:
            self._days_backfilled = self._backfill_mark() is not None
        return self._days_backfilled

    def _backfill_mark(self) -> int | None:
        item = self._client.get_item(
            TableName=self.sequence_table,
            Key={"sequence_name": _str(DAY_BACKFILL_KEY)},
            ConsistentRead=True,
        ).get("Item")
        return _int(item["upto"]) if item else None

    def backfill_history_days(self, after: int | None = None) -> int:
        """Set ``day`` on the history items with ``seq > after`` written without it (before
        the by_day index existed), then record the mark; the number of items updated.

        ``create()`` runs it once per table (from 0, while no mark exists); until the mark
        is written ``temperature_history`` falls back to the full filtered read, so old
        readings are never silently left out. It costs one consistent read of those items
        (paged, page by page) and one UpdateItem per item lacking ``day``: a one-off that
        grows with the history written before the upgrade; interrupted, it is simply run
        again. ``after=None`` continues from the last mark: run it once more if writers of
        the previous version kept writing after the upgrade's ``create()``; ``after=0``
        rechecks everything."""
        if after is None:
            after = self._backfill_mark() or 0
        upto, updated = after, 0
        pages = self._query_pages(
            TableName=self.history_table,
            KeyConditionExpression="#s = :shard AND #q > :after",
            ProjectionExpression="#q, #u, #d",
            ExpressionAttributeNames={"#s": "shard", "#q": "seq", "#u": "updated_at", "#d": "day"},
            ExpressionAttributeValues={":shard": _str(SHARD), ":after": _num(after)},
            ConsistentRead=True,
        )
        for items in pages:
            # A Filter would not read less (DynamoDB charges before filtering), and reading
            # every item gives the highest seq for the mark.
            missing = [(_int(i["seq"]), i["updated_at"]["S"]) for i in items if "day" not in i]
            upto = max([upto, *(_int(i["seq"]) for i in items)])
            if self.max_workers <= 1 or len(missing) <= 1:
                for seq, updated_at in missing:
                    self._set_day(seq, updated_at)
            else:
                with ThreadPoolExecutor(min(self.max_workers, len(missing))) as pool:
                    list(pool.map(lambda m: self._set_day(*m), missing))
            updated += len(missing)
        self._client.put_item(
            TableName=self.sequence_table,
            Item={"sequence_name": _str(DAY_BACKFILL_KEY), "upto": _num(upto)},
        )
        self._days_backfilled = True
        if updated:
            log.info("%s: set day on %d older history items", self.history_table, updated)
        return updated

    def _set_day(self, seq: int, updated_at: str) -> None:
        self._client.update_item(
            TableName=self.history_table,
            Key={"shard": _str(SHARD), "seq": _num(seq)},
            UpdateExpression="SET #d = :d",
            ConditionExpression="attribute_exists(#q)",  # never create a stray item
            ExpressionAttributeNames={"#d": "day", "#q": "seq"},
            ExpressionAttributeValues={":d": _str(_day(updated_at))},
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

    def _wait_active(self, name: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Until the table and all its GSIs are ACTIVE (a new GSI backfills after the table);
        the table's description then."""
        deadline = time.monotonic() + timeout_s
        while True:
            desc = self._client.describe_table(TableName=name)["Table"]
            statuses = [desc["TableStatus"]] + [
                i["IndexStatus"] for i in desc.get("GlobalSecondaryIndexes", [])
            ]
            if all(s == "ACTIVE" for s in statuses):
                return desc
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

    def reserved_seq(self) -> int:
        """The counter item, read consistently; 0 at first."""
        item = self._client.get_item(
            TableName=self.sequence_table,
            Key={"sequence_name": _str(SEQUENCE_KEY)},
            ConsistentRead=True,
        ).get("Item")
        self._reserved_seen = max(self._reserved_seen, _int(item["last_value"]) if item else 0)
        return self._reserved_seen

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
        expires = self.expires_at(now)
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
                        "day": _str(_day(now)),
                        TTL_ATTRIBUTE: _num(expires),
                    }
                }
            }
            for r, seq in zip(readings, seqs, strict=True)
        ]
        batch_write(self._client, self.history_table, items)

    def _write_predictions(self, columns: PredictionColumns) -> int:
        wanted = set(columns.barrel_id)
        missing = wanted - self._existing(wanted)
        if missing:
            raise KeyError(f"no reading for barrels {sorted(missing)[:20]}; nothing written")
        return sum(self.write_prediction(*row) for row in columns.rows())

    def write_prediction(
        self, barrel_id: str, quality: float, version: int, seq: int, scored_at: str
    ) -> bool:
        """The barrel's prediction on its item, unless a newer reading's is there already
        (conditional on ``reading_seq``: redoing it after a crash changes nothing) or the
        barrel has no item; whether it was written."""
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"barrel_id": _str(barrel_id)},
                UpdateExpression="SET #q = :q, #v = :v, #r = :r, #t = :t",
                ConditionExpression="attribute_exists(barrel_id) AND "
                "(attribute_not_exists(#r) OR #r <= :r)",
                ExpressionAttributeNames={
                    "#q": "predicted_quality",
                    "#v": "model_version",
                    "#r": "reading_seq",
                    "#t": "scored_at",
                },
                ExpressionAttributeValues={
                    ":q": _num(float(quality)),
                    ":v": _num(int(version)),
                    ":r": _num(int(seq)),
                    ":t": _str(scored_at),
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _existing(self, barrel_ids: set[str]) -> set[str]:
        """Which of the barrels have an item."""
        keys = [{"barrel_id": _str(b)} for b in sorted(barrel_ids)]
        return {i["barrel_id"]["S"] for i in self._batch_get(self.table, keys, "barrel_id")}

    def _batch_get(
        self, table: str, keys: Sequence[Mapping[str, Any]], projection: str | None = None
    ) -> list[dict[str, Any]]:
        """The items of ``keys`` that exist (consistent BatchGetItem, 100 keys a request,
        leftovers retried with a growing pause, as ``batch_write``), in no particular
        order."""
        found: list[dict[str, Any]] = []

        def get(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
            response = self._client.batch_get_item(RequestItems=request)
            found.extend(response["Responses"][table])
            return response.get("UnprocessedKeys")

        for start in range(0, len(keys), 100):
            request = {
                table: {"Keys": list(keys[start : start + 100]), "ConsistentRead": True}
                | ({"ProjectionExpression": projection} if projection else {})
            }
            _until_processed(get, request, table, "reads")
        return found

    # -- reads --------------------------------------------------------------------------

    def get(self, barrel_id: str) -> Reading | None:
        try:
            item = self._get_item(barrel_id)
        except self._client.exceptions.ResourceNotFoundException:
            return None  # a store with no tables yet holds no barrel (as on SQLite)
        return _reading(item) if item else None

    def _get_item(self, barrel_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table, Key={"barrel_id": _str(barrel_id)}, ConsistentRead=True
        )
        return response.get("Item")

    def _query_pages(self, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
        """Each page's items of a Query (boto3's paginator follows ``LastEvaluatedKey``)."""
        return (page["Items"] for page in self._client.get_paginator("query").paginate(**kwargs))

    def _scan(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._client.get_paginator("scan").paginate(
            TableName=self.table, ConsistentRead=True, **params
        )

    def all(self) -> list[Reading]:
        items = [item for page in self._scan() for item in page["Items"]]
        return sorted((_reading(i) for i in items), key=lambda r: r.barrel_id)

    def changed_since(self, seq: int, limit: int | None = None) -> list[Reading]:
        _check_cursor(seq, limit)
        if limit == 0:
            return []  # DynamoDB's Limit starts at 1
        pages = self._query_pages(
            TableName=self.table,
            IndexName=GSI_NAME,
            KeyConditionExpression="#s = :shard AND #q > :cursor",
            ExpressionAttributeNames={"#s": "shard", "#q": "seq"},
            ExpressionAttributeValues={":shard": _str(SHARD), ":cursor": _num(seq)},
            ScanIndexForward=True,
            PaginationConfig={} if limit is None else {"MaxItems": limit, "PageSize": limit},
        )
        return [_reading(i) for items in pages for i in items]

    def history_frame(self, after: int, upto: int) -> pd.DataFrame:
        """The history's seq range, read consistently. A follower's poll first reads the
        counter: nothing handed out above ``after`` means nothing to read; a few seqs handed
        out are read by key (``KEYED_READS``); more by one paged Query."""
        _check_cursor(after, None)
        _check_cursor(upto, None)
        if upto <= after:
            return _history_frame([])
        # A range below a counter value already read (a hole, the rest of a batch) needs no
        # new read of the counter.
        top = upto if upto <= self._reserved_seen else min(upto, self.reserved_seq())
        if top <= after:
            return _history_frame([])
        if top - after <= KEYED_READS:
            keys = [{"shard": _str(SHARD), "seq": _num(q)} for q in range(after + 1, top + 1)]
            return _history_frame(
                [_history_row(i) for i in self._batch_get(self.history_table, keys)]
            )
        pages = self._query_pages(
            TableName=self.history_table,
            KeyConditionExpression="#s = :shard AND #q BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#s": "shard", "#q": "seq"},
            ExpressionAttributeValues={
                ":shard": _str(SHARD),
                ":lo": _num(after + 1),
                ":hi": _num(top),
            },
            ConsistentRead=True,
        )
        return _history_frame([_history_row(i) for items in pages for i in items])

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
        """One Query of the by_day index per UTC day the window touches, with the window as a
        key condition on ``updated_at``: the read grows with the readings in the window (plus
        one request per day), not with all history.

        Why a UTC day: the profile assets read whole UTC days, so a daily run is one query
        (paged) rather than 24 for hourly buckets, while the ``updated_at`` sort key already
        narrows a short window inside its day to that window's items. One day holds ~1.7 M
        readings at 200 barrels every 10 s; a GSI partition value takes ~1000 writes/s and
        has no size limit, and the day being written is the only hot one (hours would not
        spread the writes either).

        The index is eventually consistent (a GSI cannot be read with ConsistentRead): a
        reading written less than about a second before the query may be missing, so a window
        ending "now" can miss its last readings. The profile schedule reads the previous UTC
        day at 00:30, half an hour after the window closed, so it sees every reading.

        Until every history item has ``day`` (``create()``'s backfill has not finished, e.g. a
        reader that never called ``create()``) this falls back to the old filtered Query of
        the whole history partition, with a warning, rather than miss older readings."""
        lo, hi = _time_window(start, end)
        if self._days_complete():
            days = _days(lo, hi)
            if self.max_workers <= 1 or len(days) <= 1:
                parts = [self._day_rows(day, lo, hi) for day in days]
            else:
                with ThreadPoolExecutor(min(self.max_workers, len(days))) as pool:
                    parts = list(pool.map(lambda day: self._day_rows(day, lo, hi), days))
            rows = [row for part in parts for row in part]
        else:
            log.warning(
                "%s: history items without day (run create() to backfill them); reading the "
                "whole history partition for the window",
                self.history_table,
            )
            rows = self._filtered_rows(lo, hi)
        # Days come in order and each day in updated_at order, so this (stable, run-aware)
        # sort costs ~one pass; seq breaks ties of one stamp as SQLite's ORDER BY does (the
        # index's order among equal sort keys is unspecified).
        rows.sort(key=lambda row: (row[1], row[3]))
        return _temperature_frame([row[:3] for row in rows])

    def _day_rows(self, day: str, lo: str, hi: str) -> list[tuple[str, str, float, int]]:
        """The day's readings with ``lo <= updated_at < hi``: BETWEEN (the only two-sided key
        condition) reads at most the stamps equal to ``hi`` too, dropped here."""
        kwargs: dict[str, Any] = {
            "TableName": self.history_table,
            "IndexName": DAY_GSI_NAME,
            "KeyConditionExpression": "#d = :day AND #u BETWEEN :lo AND :hi",
            "ProjectionExpression": "#b, #u, #t, #q",
            "ExpressionAttributeNames": {
                "#d": "day",
                "#u": "updated_at",
                "#b": "barrel_id",
                "#t": "temperature_c",
                "#q": "seq",
            },
            "ExpressionAttributeValues": {":day": _str(day), ":lo": _str(lo), ":hi": _str(hi)},
        }
        if self._page_items:
            kwargs["PaginationConfig"] = {"PageSize": self._page_items}
        return [
            row
            for items in self._query_pages(**kwargs)
            for row in map(_temperature_row, items)
            if row[1] < hi
        ]

    def _filtered_rows(self, lo: str, hi: str) -> list[tuple[str, str, float, int]]:
        """The window from a Query of the whole history partition filtered on
        ``updated_at``: the filter applies after the read, so it costs all history."""
        pages = self._query_pages(
            TableName=self.history_table,
            KeyConditionExpression="#s = :shard",
            FilterExpression="#u >= :lo AND #u < :hi",
            ProjectionExpression="#b, #u, #t, #q",
            ExpressionAttributeNames={
                "#s": "shard",
                "#u": "updated_at",
                "#b": "barrel_id",
                "#t": "temperature_c",
                "#q": "seq",
            },
            ExpressionAttributeValues={":shard": _str(SHARD), ":lo": _str(lo), ":hi": _str(hi)},
            ConsistentRead=True,
        )
        return [_temperature_row(item) for items in pages for item in items]

    # -- retention ----------------------------------------------------------------------

    def history_day(self, day: date) -> pd.DataFrame:
        """The day's seqs from the by_day index, then one consistent Query of the history
        table over that seq range filtered on the day: full items, read at the cost of the
        day. The index is eventually consistent: read a day once it is closed."""
        if not self._days_complete():
            raise RuntimeError(
                f"{self.history_table}: history items without day; run create() first"
            )
        names = {"#d": "day", "#q": "seq"}
        seqs = [
            _int(item["seq"])
            for items in self._query_pages(
                TableName=self.history_table,
                IndexName=DAY_GSI_NAME,
                KeyConditionExpression="#d = :day",
                ProjectionExpression="#q",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":day": _str(day.isoformat())},
            )
            for item in items
        ]
        if not seqs:
            return _history_frame([])
        pages = self._query_pages(
            TableName=self.history_table,
            KeyConditionExpression="#s = :shard AND #q BETWEEN :lo AND :hi",
            FilterExpression="#d = :day",
            ExpressionAttributeNames={**names, "#s": "shard"},
            ExpressionAttributeValues={
                ":shard": _str(SHARD),
                ":lo": _num(min(seqs)),
                ":hi": _num(max(seqs)),
                ":day": _str(day.isoformat()),
            },
            ConsistentRead=True,
        )
        return _history_frame([_history_row(i) for items in pages for i in items])

    def oldest_history_day(self) -> date | None:
        response = self._client.query(
            TableName=self.history_table,
            KeyConditionExpression="#s = :shard",
            ProjectionExpression="#u",
            ExpressionAttributeNames={"#s": "shard", "#u": "updated_at"},
            ExpressionAttributeValues={":shard": _str(SHARD)},
            ScanIndexForward=True,
            Limit=1,
            ConsistentRead=True,
        )
        items = response["Items"]
        return date.fromisoformat(_day(items[0]["updated_at"]["S"])) if items else None

    def delete_history(self, seq_ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        """BatchWriteItem deletes, 25 keys a request, ``batch_size`` seqs at a time spread
        over ``max_workers`` threads; the number of seqs deleted (DynamoDB does not say
        whether each item still existed: deleting a missing key is a no-op)."""
        deleted = 0
        for group in _chunks(sorted(seq_ranges), batch_size):
            keys = [
                {"DeleteRequest": {"Key": {"shard": _str(SHARD), "seq": _num(seq)}}}
                for lo, hi in group
                for seq in range(lo, hi + 1)
            ]
            parts = [keys[i : i + BATCH_ITEMS] for i in range(0, len(keys), BATCH_ITEMS)]
            if self.max_workers <= 1 or len(parts) <= 1:
                for part in parts:
                    batch_write(self._client, self.history_table, part)
            else:
                with ThreadPoolExecutor(min(self.max_workers, len(parts))) as pool:
                    writes = [
                        pool.submit(batch_write, self._client, self.history_table, part)
                        for part in parts
                    ]
                    for write in writes:
                        write.result()
            deleted += len(keys)
        return deleted


def batch_write(client: Any, table: str, items: Sequence[Mapping[str, Any]]) -> None:
    """``items`` (``PutRequest``/``DeleteRequest`` entries) on ``table`` in BatchWriteItem
    requests of ``BATCH_ITEMS``, each request's leftovers (``UnprocessedItems``) retried with
    a growing pause; a ``RuntimeError`` naming the table when some are still left after ten
    tries. Puts and deletes by key are idempotent, so a caller redoing a batch after a crash
    rewrites the same items."""
    for start in range(0, len(items), BATCH_ITEMS):
        _until_processed(
            lambda request: client.batch_write_item(RequestItems=request).get("UnprocessedItems"),
            {table: list(items[start : start + BATCH_ITEMS])},
            table,
            "writes",
        )


def _until_processed(
    send: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
    request: Mapping[str, Any],
    table: str,
    what: str,
) -> None:
    """Send a batch request, then what ``send`` returns as left unprocessed, with a growing
    pause; a ``RuntimeError`` naming the table when some are still left after ten tries."""
    left: Mapping[str, Any] | None = request
    for attempt in range(10):
        left = send(left)
        if not left:
            return
        time.sleep(0.05 * 2**attempt)
    rest = left[table]
    count = len(rest["Keys"]) if isinstance(rest, Mapping) else len(rest)
    raise RuntimeError(f"{table}: {count} {what} still unprocessed")


def _index_names(table: Mapping[str, Any]) -> set[str]:
    """The GSI names in a DescribeTable ``Table``."""
    return {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}


def _temperature_row(item: Mapping[str, Any]) -> tuple[str, str, float, int]:
    """(barrel_id, updated_at, temperature_c, seq) of a history item."""
    return (
        item["barrel_id"]["S"],
        item["updated_at"]["S"],
        _float(item["temperature_c"]),
        _int(item["seq"]),
    )


def _history_row(item: Mapping[str, Any]) -> tuple[Any, ...]:
    """A history item's values in ``HISTORY_COLUMNS`` order."""
    return (
        _int(item["seq"]),
        item["barrel_id"]["S"],
        item["wine_type"]["S"],
        *(_float(item[name]) for name in NUMERIC_FIELDS),
        item["updated_at"]["S"],
    )


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
