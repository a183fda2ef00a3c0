"""One GraphQL call to a Dagster webserver, for the tests that drive the UI's own API."""

import requests


def graphql(
    base_url: str, query: str, variables: dict | None = None, timeout_s: float = 60
) -> dict:
    """``data`` of the answer; GraphQL errors raise, naming them."""
    body = {"query": query, "variables": variables or {}}
    response = requests.post(f"{base_url}/graphql", json=body, timeout=timeout_s)
    response.raise_for_status()
    answer = response.json()
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]
