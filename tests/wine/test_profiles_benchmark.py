"""benchmarks/sensor_profiles.py still runs end to end (on a tiny range): the figures in the
README come from it, and it builds the profile assets' resources by hand."""

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_sensor_profiles_benchmark_runs_both_sides_on_the_same_rows(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/sensor_profiles.py", "--json", str(out)]
        + ["--sensors", "40", "--days", "3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["rows"] == 40 * 24 * 3
    assert figures["runs"] == 1  # a single-run backfill over the three days
    assert sum(figures["cluster_distribution"].values()) == 40 * 3
    assert figures["ratio"] > 0 and figures["dagster_bookkeeping_s"] > 0
    assert figures["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] == "1"
    assert figures["DAGSTER_EVENT_BATCH_SIZE"] == "100"
