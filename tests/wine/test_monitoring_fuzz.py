"""The prediction service fuzzed as a client would: schemathesis against its own OpenAPI.

A real uvicorn server on loopback (``running_service``) with a champion, open (no token) over
a readings store holding one barrel (the schema's example id) and over a store with no tables
yet, then with a token. ``schemathesis run --checks all`` runs every phase (schema examples,
coverage, fuzzing) in positive and negative modes: no answer may be a 5xx or contradict the
schema (status, content type, body, headers), schema-valid requests must be accepted and
schema-invalid ones refused.

The command line rather than ``schemathesis.pytest.from_fixture``: its lazy loader reads a
private pytest attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.wine.conftest import reading
from tests.wine.wine_service import running_service
from wine_assets.readings.store import open_store

#: Cases per operation and phase: enough to reach every field's bounds and the empty,
#: oversized and mistyped bodies, few enough for a run of about ten seconds.
EXAMPLES = 40
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
TOKEN = "fuzz-token-3b7e91c04d"  # noqa: S105 - a test's token
#: What an answer to a request without the token is checked against: the schema's word on
#: it (the checks that judge the data sent would call every refused request a failure).
CONFORMANCE = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def fuzz(schema: str, cwd: Path, *options: str) -> str:
    """``schemathesis run`` on ``schema`` (a URL or a file); asserts that it passed every
    documented operation and returns its output."""
    run = subprocess.run(
        [
            str(SCHEMATHESIS), "run", schema, "--max-examples", str(EXAMPLES), "--seed", "17",
            "--workers", "1", "--generation-database", "none", "--no-color", *options,
        ],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = run.stdout[-12_000:] + run.stderr[-4_000:]
    assert run.returncode == 0, report
    assert "6 selected / 6 total" in run.stdout, report  # every documented operation
    assert re.search(r"\b(\d+) generated, \1 passed\b", run.stdout), report  # none failed
    return run.stdout


def one_barrel(tmp_path: Path) -> str:
    """A readings store holding the schema's example barrel; its URL."""
    readings = f"sqlite:///{tmp_path / 'readings.db'}"
    with open_store(readings) as opened:
        opened.create()
        opened.put([reading("barrel-0001")])
    return readings


@pytest.mark.parametrize("store", ["one barrel", "no tables yet"])
def test_no_answer_is_a_5xx_or_contradicts_the_schema(champion_storage, tmp_path, store):
    readings = one_barrel(tmp_path) if store == "one barrel" else f"sqlite:///{tmp_path}/r.db"
    with running_service(champion_storage, f"sqlite:///{tmp_path / 'log.db'}", readings) as url:
        fuzz(f"{url}/openapi.json", tmp_path, "--checks", "all")


def test_with_a_token_no_answer_is_a_5xx_or_contradicts_the_schema(champion_storage, tmp_path):
    """With the token sent, every check, ``ignored_auth`` among them: it probes each operation
    once more without the token and with a wrong one, which must be refused. Without it (the
    schema read from a file: /openapi.json needs the token too), every answer is a 401 that
    the schema declares: status, JSON body and ``WWW-Authenticate`` header."""
    log = f"sqlite:///{tmp_path / 'log.db'}"
    with running_service(champion_storage, log, one_barrel(tmp_path), token=TOKEN) as url:
        bearer = f"Authorization: Bearer {TOKEN}"
        fuzz(f"{url}/openapi.json", tmp_path, "--checks", "all", "-H", bearer)
        schema = requests.get(f"{url}/openapi.json", headers=dict([bearer.split(": ")]), timeout=10)
        assert requests.get(f"{url}/openapi.json", timeout=10).status_code == 401
        (tmp_path / "openapi.json").write_text(schema.text)
        anonymous = fuzz("openapi.json", tmp_path, "--url", url, "--checks", CONFORMANCE)
    # every operation but /health answered nothing but 401s
    assert "Authentication failed: 5 operations returned only 401/403" in anonymous, anonymous
