"""The run queue's lanes: barrel scoring never waits behind background runs.

Both instances' limits are read from their YAML and applied with Dagster's own counter (the
one its queue daemon uses) to runs carrying the tags our jobs, sensors and schedules really set.
"""

import pytest
import yaml
from dagster import DagsterRun

# Private: the queued run coordinator's own tag-limit rule; Dagster 1.13 exposes no public
# way to ask whether a run would be held (pyproject's per-file ignore of PLC2701).
from dagster._utils.tags import TagConcurrencyLimitsCounter

from beer_assets.definitions import defs as beer_defs
from beer_assets.ingest.jobs import punkapi_poll_schedule
from platform_core.run_tags import BACKGROUND, SCORING, run_tags
from tests.conftest import REPO_ROOT
from tests.topology.compose import env_example
from wine_assets.definitions import defs as wine_defs
from wine_assets.monitoring.sensor import SENSOR_TAGS as DRIFT_TAGS
from wine_assets.profiles.schedule import SCHEDULE_TAGS as PROFILES_SCHEDULE_TAGS
from wine_assets.profiles.sensor import SENSOR_TAGS as PROFILES_SENSOR_TAGS
from wine_assets.quality.sensor import SENSOR_TAGS as SCORING_TAGS

INSTANCES = {"local": REPO_ROOT / "dagster.yaml", "production": REPO_ROOT / "docker/dagster.yaml"}
BACKGROUND_TAGS = {
    "drift": DRIFT_TAGS,
    "profiles sensor": PROFILES_SENSOR_TAGS,
    "profiles schedule": PROFILES_SCHEDULE_TAGS,
    "punk api poll schedule": punkapi_poll_schedule.tags,
    # Every run of a job, launched by hand too, carries the job's run tags.
    "drift job": wine_defs.resolve_job_def("wine_drift_report_job").run_tags,
    "profiles job": wine_defs.resolve_job_def("sensor_profiles").run_tags,
    "punk api poll job": beer_defs.resolve_job_def("punkapi_random_poll").run_tags,
    "punk api crawl job": beer_defs.resolve_job_def("punkapi_full_crawl").run_tags,
}
CRAWL_TAGS = BACKGROUND_TAGS["punk api crawl job"]


def queue_config(instance: str) -> dict:
    return yaml.safe_load(INSTANCES[instance].read_text())["run_coordinator"]["config"]


def run(tags: dict[str, str]) -> DagsterRun:
    return DagsterRun(job_name="job", tags=tags)


def blocked(instance: str, in_progress: list[dict[str, str]], queued: dict[str, str]) -> bool:
    limits = queue_config(instance)["tag_concurrency_limits"]
    counter = TagConcurrencyLimitsCounter(limits, [run(tags) for tags in in_progress])
    return counter.is_blocked(run(queued))


def test_jobs_sensors_and_schedules_name_their_lane():
    assert SCORING_TAGS["platform/lane"] == SCORING
    assert wine_defs.resolve_job_def("barrel_snapshot").run_tags == {"platform/lane": SCORING}
    for name, tags in BACKGROUND_TAGS.items():
        assert tags["platform/lane"] == BACKGROUND, name
    with pytest.raises(ValueError, match="lane"):
        run_tags("sensor", "fast")


@pytest.mark.parametrize("instance", sorted(INSTANCES))
@pytest.mark.parametrize("background", sorted(BACKGROUND_TAGS))
def test_scoring_is_not_held_by_background_runs(instance, background):
    tags = BACKGROUND_TAGS[background]
    assert not blocked(instance, [tags], SCORING_TAGS)
    # Each lane still runs one at a time: snapshots are scored in order.
    assert blocked(instance, [SCORING_TAGS], SCORING_TAGS)
    assert blocked(instance, [tags], DRIFT_TAGS)
    assert not blocked(instance, [SCORING_TAGS], tags)
    assert blocked(instance, [tags], CRAWL_TAGS)  # e.g. never two crawls at once


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_both_lanes_fit_in_the_run_slots(instance):
    slots = queue_config(instance)["max_concurrent_runs"]
    if isinstance(slots, dict):  # production: {env: DAGSTER_MAX_CONCURRENT_RUNS}
        slots = int(env_example()[slots["env"]])
    assert slots >= 2
