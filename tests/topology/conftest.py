"""The ``topology`` session fixture: the production processes on loopback (see stack.py),
started once for every scenario, logs and screenshots kept in ``test-artifacts/topology/``."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.topology.stack import Topology, running_topology

ARTIFACTS = REPO_ROOT / "test-artifacts" / "topology"


@pytest.fixture(scope="session")
def topology(data_dir: Path) -> Iterator[Topology]:
    with running_topology(data_dir, ARTIFACTS) as topo:
        yield topo
