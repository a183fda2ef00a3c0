"""The local Punk API server: routes, pagination, filters, errors and fault injection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from beer_assets.punkapi.server import FaultPlan, FaultRule, PunkApiServer, main

Beer = dict[str, Any]
ServerFactory = Callable[..., PunkApiServer]


def _get(server: PunkApiServer, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, timeout=5)


def _ids(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [beer["id"] for beer in response.json()]


# --------------------------------------------------------------------------- pagination


def test_default_page_is_first_25_beers(punkapi_server: PunkApiServer) -> None:
    response = _get(punkapi_server, "/beers")
    assert _ids(response) == list(range(1, 26))
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Total"] == "325"
    assert response.headers["X-Pages"] == "13"


def test_pages_cover_all_beers_then_run_empty(
    punkapi_server: PunkApiServer, punkapi_beers: list[Beer]
) -> None:
    pages = [_get(punkapi_server, "/beers", page=n, per_page=80).json() for n in range(1, 7)]
    assert [len(page) for page in pages] == [80, 80, 80, 80, 5, 0]
    assert [beer for page in pages for beer in page] == punkapi_beers


def test_page_beyond_the_end_is_empty(punkapi_server: PunkApiServer) -> None:
    assert _ids(_get(punkapi_server, "/beers", page=99)) == []


# --------------------------------------------------------------------------- filters


def test_ids_filter(punkapi_server: PunkApiServer) -> None:
    assert _ids(_get(punkapi_server, "/beers", ids="3|1|2|999")) == [1, 2, 3]


def test_beer_name_filter_is_case_insensitive_with_underscores_as_spaces(
    punkapi_server: PunkApiServer, punkapi_beers: list[Beer]
) -> None:
    expected = [b["id"] for b in punkapi_beers if "punk ipa" in b["name"].lower()]
    assert len(expected) >= 2
    assert _ids(_get(punkapi_server, "/beers", beer_name="PUNK_ipa", per_page=80)) == expected


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"abv_gt": 8}, lambda b: b["abv"] > 8),
        ({"abv_lt": 4.5}, lambda b: b["abv"] < 4.5),
        ({"abv_gt": 5, "abv_lt": 6}, lambda b: 5 < b["abv"] < 6),
        ({"ibu_gt": 0}, lambda b: b["ibu"] is not None and b["ibu"] > 0),
        ({"ibu_lt": 2000}, lambda b: b["ibu"] is not None),
        ({"ibu_gt": 50, "abv_lt": 7}, lambda b: (b["ibu"] or 0) > 50 and b["abv"] < 7),
    ],
    ids=["abv_gt", "abv_lt", "abv_range", "ibu_gt", "ibu_lt_excludes_null", "ibu_and_abv"],
)
def test_numeric_filters(
    punkapi_server: PunkApiServer,
    punkapi_beers: list[Beer],
    params: dict[str, float],
    keep: Callable[[Beer], bool],
) -> None:
    expected = [b["id"] for b in punkapi_beers if keep(b)]
    assert 0 < len(expected) < len(punkapi_beers)
    got: list[int] = []
    for page in range(1, 6):
        got += _ids(_get(punkapi_server, "/beers", page=page, per_page=80, **params))
    assert got == expected


def test_null_ibu_never_matches_ibu_filters(
    punkapi_server: PunkApiServer, punkapi_beers: list[Beer]
) -> None:
    null_ibu = {b["id"] for b in punkapi_beers if b["ibu"] is None}
    assert null_ibu, "the dump should contain beers without an ibu"
    ids = "|".join(str(i) for i in sorted(null_ibu))
    assert _ids(_get(punkapi_server, "/beers", ids=ids)) == sorted(null_ibu)
    assert _ids(_get(punkapi_server, "/beers", ids=ids, ibu_gt=0)) == []
    assert _ids(_get(punkapi_server, "/beers", ids=ids, ibu_lt=100000)) == []


def test_filters_paginate_after_filtering(
    punkapi_server: PunkApiServer, punkapi_beers: list[Beer]
) -> None:
    expected = [b["id"] for b in punkapi_beers if b["abv"] > 6]
    response = _get(punkapi_server, "/beers", abv_gt=6, page=2, per_page=10)
    assert _ids(response) == expected[10:20]
    assert response.headers["X-Total"] == str(len(expected))


# --------------------------------------------------------------------------- single beers


def test_beer_by_id_is_a_list_of_one(
    punkapi_server: PunkApiServer, punkapi_beers: list[Beer]
) -> None:
    response = _get(punkapi_server, "/beers/192")
    assert response.status_code == 200
    assert response.json() == [punkapi_beers[191]]


def test_random_is_a_list_of_one_known_beer(
    punkapi_server: PunkApiServer, punkapi_beers: list[Beer]
) -> None:
    seen = {_get(punkapi_server, "/beers/random").json()[0]["id"] for _ in range(10)}
    assert seen <= {b["id"] for b in punkapi_beers}
    assert len(seen) > 1, "random should not always return the same beer"


def test_random_is_reproducible_per_seed(punkapi_server_factory: ServerFactory) -> None:
    def sequence(seed: int) -> list[int]:
        server = punkapi_server_factory(FaultPlan(seed=seed))
        return [_ids(_get(server, "/beers/random"))[0] for _ in range(5)]

    assert sequence(11) == sequence(11)
    assert sequence(11) != sequence(12)


# --------------------------------------------------------------------------- errors


def _assert_error(response: requests.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["statusCode"] == status
    for needle in needles:
        assert needle in payload["message"], payload["message"]
    return payload


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"per_page": 81}, "per_page"),
        ({"per_page": 0}, "per_page"),
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"abv_gt": "strong"}, "abv_gt"),
        ({"abv_lt": -1}, "abv_lt"),
        ({"ibu_gt": "nan"}, "ibu_gt"),
        ({"ibu_lt": ""}, "ibu_lt"),
        ({"ids": "1|two"}, "ids"),
        ({"ids": ""}, "ids"),
        ({"beer_name": "__"}, "beer_name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_query_params_are_400_naming_the_param(
    punkapi_server: PunkApiServer, params: dict[str, Any], param: str
) -> None:
    payload = _assert_error(_get(punkapi_server, "/beers", **params), 400, f"{param}:")
    assert [problem["param"] for problem in payload["data"]] == [param]


def test_all_invalid_params_are_reported_together(punkapi_server: PunkApiServer) -> None:
    response = _get(punkapi_server, "/beers", page="x", per_page=500, colour="red")
    payload = _assert_error(response, 400, "page:", "per_page:", "colour:")
    assert sorted(problem["param"] for problem in payload["data"]) == [
        "colour",
        "page",
        "per_page",
    ]


def test_unknown_beer_is_404(punkapi_server: PunkApiServer) -> None:
    _assert_error(_get(punkapi_server, "/beers/326"), 404, "No beer found that matches the ID 326")


@pytest.mark.parametrize("beer_id", ["abc", "0", "-1"])
def test_invalid_beer_id_is_400(punkapi_server: PunkApiServer, beer_id: str) -> None:
    _assert_error(_get(punkapi_server, f"/beers/{beer_id}"), 400, "id:")


@pytest.mark.parametrize("path", ["/", "/beer", "/beers/1/2"])
def test_unknown_endpoint_is_404(punkapi_server: PunkApiServer, path: str) -> None:
    _assert_error(_get(punkapi_server, path), 404, "No endpoint found")


# --------------------------------------------------------------------------- fault injection


def _statuses(server: PunkApiServer, n: int) -> list[int]:
    return [_get(server, "/beers", per_page=2).status_code for _ in range(n)]


def test_first_k_requests_fail(punkapi_server_factory: ServerFactory) -> None:
    server = punkapi_server_factory(FaultPlan(server_error=FaultRule(first_k=2)))
    assert _statuses(server, 4) == [500, 500, 200, 200]
    assert server.request_count == 4
    assert server.fault_counts == {"server_error": 2}


def test_every_nth_request_is_rate_limited_with_retry_after(
    punkapi_server_factory: ServerFactory,
) -> None:
    server = punkapi_server_factory(FaultPlan(rate_limit=FaultRule(every_nth=3), retry_after_s=2))
    responses = [_get(server, "/beers", per_page=2) for _ in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429]
    assert responses[2].headers["Retry-After"] == "2"
    assert responses[2].json()["statusCode"] == 429


def test_truncated_body_is_half_of_the_real_one(punkapi_server_factory: ServerFactory) -> None:
    server = punkapi_server_factory(FaultPlan(truncated=FaultRule(first_k=1)))
    cut = _get(server, "/beers", per_page=5)
    whole = _get(server, "/beers", per_page=5)
    assert cut.status_code == 200 and whole.status_code == 200
    assert cut.content == whole.content[: len(whole.content) // 2]
    with pytest.raises(ValueError):
        json.loads(cut.content)


def test_slow_responses_sleep_before_answering(punkapi_server_factory: ServerFactory) -> None:
    """Only a lower bound on wall time: a loaded machine can make any request slow, so which
    requests were slowed is read from the server's own count, not from how long they took."""
    server = punkapi_server_factory(FaultPlan(slow=FaultRule(first_k=1), slow_s=0.3))
    started = time.monotonic()
    assert _get(server, "/beers/1").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert server.fault_counts["slow"] == 1
    assert _get(server, "/beers/1").status_code == 200
    assert server.fault_counts["slow"] == 1  # first_k=1: the second request was not slowed


def test_fault_precedence_rate_limit_beats_server_error(
    punkapi_server_factory: ServerFactory,
) -> None:
    server = punkapi_server_factory(FaultPlan(rate_limit=1.0, server_error=1.0, truncated=1.0))
    assert _statuses(server, 2) == [429, 429]


def test_random_faults_are_reproducible_per_seed(punkapi_server_factory: ServerFactory) -> None:
    def run(seed: int) -> list[int]:
        plan = FaultPlan(rate_limit=0.2, server_error=0.3, seed=seed, retry_after_s=0)
        return _statuses(punkapi_server_factory(plan), 30)

    first = run(5)
    assert first == run(5)
    assert {200, 429, 500} <= set(first), "faults should mix at these rates"
    assert first != run(6)


@pytest.mark.parametrize(
    "build",
    [
        lambda: FaultPlan(server_error=1.5),
        lambda: FaultPlan(rate_limit=FaultRule(probability=-0.1)),
        lambda: FaultPlan(slow_s=-1),
        lambda: FaultPlan(retry_after_s=-1),
        lambda: FaultRule(every_nth=-2),
    ],
)
def test_invalid_fault_plans_are_rejected(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_server_does_not_log_to_stderr(
    punkapi_server_factory: ServerFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    server = punkapi_server_factory(FaultPlan(slow=FaultRule(first_k=1), slow_s=0.4))
    with pytest.raises(requests.Timeout):
        requests.get(f"{server.url}/beers", timeout=0.1)  # server then writes to a closed socket
    _get(server, "/beers/999")
    time.sleep(0.5)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_stop_releases_the_port(punkapi_server_factory: ServerFactory) -> None:
    server = punkapi_server_factory()
    url = server.url
    assert requests.get(f"{url}/beers/1", timeout=5).status_code == 200
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/beers/1", timeout=2)


# --------------------------------------------------------------------------- console entry


def test_main_serves_until_sigterm(punkapi_dump_path: Path) -> None:
    env = {**os.environ, "PLATFORM_DATA_DIR": str(punkapi_dump_path.parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "beer_assets.punkapi.server", "--port", "0", "--fault-500", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "Serving 325 beers" in line, line
        url = line.rsplit(" at ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
        assert requests.get(f"{url}/beers", timeout=5).status_code == 500
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Stopped." in out
    assert err == ""


def test_main_fails_clearly_without_a_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert main(["--dump", str(missing), "--port", "0"]) == 2
    assert f"beer dump not found: {missing}" in capsys.readouterr().err
