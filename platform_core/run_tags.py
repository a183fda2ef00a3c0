"""Run tags that the run queue's limits read: every automatic or background job names its lane.

Both instances (``dagster.yaml``, ``docker/dagster.yaml``) allow one run at a time per lane:

* ``scoring``: the barrel snapshot + predictions runs. Latency-bound and ordered (each snapshot
  starts where the previous one stopped), so one at a time, and never behind other work.
* ``background``: drift reports, profile ranges, Punk API polls and full crawls. One at a
  time (two crawls would register the same model version), in the other run slot, so none of
  them holds up a barrel's prediction.

The lane is a tag of the job itself (``lane_tags``), so a run launched by hand from the UI
queues in the same lane as the sensor's; sensors and schedules add ``platform/trigger``
(sensor or schedule) for people filtering runs.
"""

LANE = "platform/lane"
SCORING = "scoring"
BACKGROUND = "background"
TRIGGER = "platform/trigger"


def lane_tags(lane: str) -> dict[str, str]:
    """The tag putting a job's runs in ``lane``."""
    if lane not in (SCORING, BACKGROUND):
        raise ValueError(f"lane: expected {SCORING!r} or {BACKGROUND!r}, got {lane!r}")
    return {LANE: lane}


def run_tags(trigger: str, lane: str) -> dict[str, str]:
    """The tags for a run that ``trigger`` ("sensor", "schedule") requests in ``lane``."""
    return {TRIGGER: trigger, **lane_tags(lane)}
