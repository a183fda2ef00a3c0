"""A snapshot of what each code location defines: asset keys, checks (blocking or not), jobs,
sensors and schedules, as dagster-open-platform keeps one. A change to the graph shows up
here as a diff to review; `UPDATE_SNAPSHOT=1 pytest tests/core/test_definitions_snapshot.py`
rewrites the file after a deliberate change."""

import json
import os
from pathlib import Path

import dagster as dg

from beer_assets.definitions import defs as beer
from wine_assets.definitions import defs as wine

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def outline(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    checks = sorted(
        f"{key.asset_key.to_user_string()}:{key.name}"
        + (" (blocking)" if graph.get(key).blocking else "")
        for key in graph.asset_check_keys
    )
    return {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": sorted(s.name for s in repo.schedule_defs),
    }


def test_definitions_match_the_snapshot():
    current = {"beer": outline(beer), "wine": outline(wine)}
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
