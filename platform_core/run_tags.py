"""Tags on automatically requested runs, which the run queue's limits read.

Both instances (``dagster.yaml``, ``docker/dagster.yaml``) allow one run at a time per lane:

* ``scoring``: the barrel snapshot + predictions runs. Latency-bound and ordered (each snapshot
  starts where the previous one stopped), so one at a time, and never behind other work.
* ``background``: drift reports and profile ranges (sensors, schedule). One at a time, in the
  other run slot, so a profile backfill cannot hold up a barrel's prediction.

``platform/trigger`` says what asked for the run (sensor or schedule), for people filtering runs.
"""

LANE = "platform/lane"
SCORING = "scoring"
BACKGROUND = "background"
TRIGGER = "platform/trigger"


def run_tags(trigger: str, lane: str) -> dict[str, str]:
    """The tags for a run that ``trigger`` ("sensor", "schedule") requests in ``lane``."""
    if lane not in (SCORING, BACKGROUND):
        raise ValueError(f"lane: expected {SCORING!r} or {BACKGROUND!r}, got {lane!r}")
    return {TRIGGER: trigger, LANE: lane}
