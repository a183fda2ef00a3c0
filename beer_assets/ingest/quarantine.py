"""Split landed pages into valid beer records and quarantined ones, each with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from beer_assets.ingest.landing import RawPage
from beer_assets.punkapi.schema import validate_beer

QUARANTINE_COLUMNS = ["landing", "page", "position", "beer_id", "reasons", "record"]


@dataclass
class Sorted:
    """Valid records in landing order, the quarantine table, and how many items were seen."""

    valid: list[dict]
    quarantine: pd.DataFrame
    seen: int

    @property
    def quarantine_share(self) -> float:
        return len(self.quarantine) / self.seen if self.seen else 0.0


def sort_records(pages: Iterable[RawPage]) -> Sorted:
    """Validate every item of every page; a page that is not a JSON list is quarantined whole."""
    valid: list[dict] = []
    bad: list[dict] = []
    seen = 0
    for page in pages:
        try:
            items = json.loads(page.body)
        except ValueError as exc:
            seen += 1
            bad.append(
                _row(
                    page,
                    -1,
                    None,
                    [f"page: not valid JSON ({exc})"],
                    page.body.decode(errors="replace"),
                )
            )
            continue
        if not isinstance(items, list):
            seen += 1
            bad.append(
                _row(page, -1, None, ["page: expected a JSON list of beers"], json.dumps(items))
            )
            continue
        for pos, item in enumerate(items):
            seen += 1
            reasons = validate_beer(item)
            if reasons:
                beer_id = item.get("id") if isinstance(item, dict) else None
                bad.append(_row(page, pos, beer_id, reasons, json.dumps(item)))
            else:
                valid.append(item)
    quarantine = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS).astype(
        {
            "landing": "string",
            "page": "string",
            "position": "int64",
            "beer_id": "Int64",
            "reasons": "string",
            "record": "string",
        }
    )
    return Sorted(valid=valid, quarantine=quarantine, seen=seen)


def _row(page: RawPage, pos: int, beer_id: object, reasons: list[str], record: str) -> dict:
    return {
        "landing": page.landing,
        "page": page.page,
        "position": pos,
        "beer_id": beer_id if isinstance(beer_id, int) and not isinstance(beer_id, bool) else None,
        "reasons": "; ".join(reasons),
        "record": record,
    }
