"""How fresh the wine location's live assets must be: Dagster freshness policies.

A policy makes a stopped sensor visible: Dagster's freshness daemon (part of ``dagster-daemon``
and of ``dagster dev``, on by default in 1.13) marks the asset WARN, then FAIL (stale: shown on
the asset's page and in the lineage) once its newest materialization, of any partition, is
older than the window; ``wine_freshness_alerts`` (``platform_core.alerts``) posts the FAIL.
A stopped daemon cannot mark anything: the UI keeps the last state it wrote and shows the
daemon without heartbeat (*Deployment* → *Daemons*).

* ``SCORING`` (``wine_sensor_snapshot``, ``barrel_quality_predictions``): readings change
  every ~10 s and the barrel scorer reports its work on today's partition every minute, so 5
  minutes without a materialization is odd (WARN) and 15 an outage (FAIL): ``wine-scorer``
  stopped, no champion, or no barrel sending (``SIMULATE=0 make dev`` shows that after 15
  minutes).
* ``DRIFT`` (``wine_drift_report``): one report per burst of API predictions, at least hourly
  while a trickle arrives (``DRIFT_REPORT_MAX_WAIT_S``); none for a day means the drift sensor
  is stopped or the prediction service got no traffic, both worth a look.
* ``PROFILES`` (the four sensor-profile assets): a day's partition every day (drop sensor, or
  the 00:30 schedule with the readings source); 30 hours without one is a missed day. Where
  days arrive less often (the shipped synthetic month is profiled once) they show stale after
  30 hours, which is what they are.
"""

from datetime import timedelta

import dagster as dg


def _policy(warn: timedelta, fail: timedelta) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


SCORING = _policy(warn=timedelta(minutes=5), fail=timedelta(minutes=15))
DRIFT = _policy(warn=timedelta(hours=6), fail=timedelta(days=1))
PROFILES = _policy(warn=timedelta(hours=25), fail=timedelta(hours=30))
