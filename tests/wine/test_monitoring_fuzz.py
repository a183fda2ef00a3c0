"""The prediction service fuzzed as a client would: schemathesis against its own OpenAPI.

A real uvicorn server on loopback (``running_service``) with a champion, once over a readings
store holding one barrel (the schema's example id) and once over a store with no tables yet.
``schemathesis run --checks all`` runs every phase (schema examples, coverage, fuzzing) in
positive and negative modes: no answer may be a 5xx or contradict the schema (status, content
type, body, headers), schema-valid requests must be accepted and schema-invalid ones refused.

The command line rather than ``schemathesis.pytest.from_fixture``: its lazy loader reads a
private pytest attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.wine.conftest import reading
from tests.wine.wine_service import running_service
from wine_assets.readings.store import open_store

#: Cases per operation and phase: enough to reach every field's bounds and the empty,
#: oversized and mistyped bodies, few enough for a run of about ten seconds.
EXAMPLES = 40
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.mark.parametrize("store", ["one barrel", "no tables yet"])
def test_no_answer_is_a_5xx_or_contradicts_the_schema(champion_storage, tmp_path, store):
    readings = f"sqlite:///{tmp_path / 'readings.db'}"
    if store == "one barrel":
        with open_store(readings) as opened:
            opened.create()
            opened.put([reading("barrel-0001")])
    with running_service(champion_storage, f"sqlite:///{tmp_path / 'log.db'}", readings) as url:
        run = subprocess.run(
            [
                str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks", "all",
                "--max-examples", str(EXAMPLES), "--seed", "17", "--workers", "1",
                "--generation-database", "none", "--no-color",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    report = run.stdout[-12_000:] + run.stderr[-4_000:]
    assert run.returncode == 0, report
    assert "6 selected / 6 total" in run.stdout, report  # every documented operation
    assert " passed" in run.stdout and "failed" not in run.stdout, report
