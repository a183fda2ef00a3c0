"""A newcomer's first ``make dev``: how long until every domain is live, and a clean stop.

Starts ``platform-dev`` (what ``make dev`` runs) from empty homes with no PLATFORM_DATA_DIR
(the shipped wine files, the generated drop month and the Punk API dump that ``make data``
fetched), takes the README walkthrough's one action (``wine-send-batch normal``, as soon as
a wine champion serves) and times, from Dagster up (both code locations loaded), each output:
the beer table and predictions, the wine champion, a barrel scored after it, profile
assignments for every generated day, the drift report of the batch. Then Ctrl-C, and a count
of the processes it had that are still alive.

Goal: ``time_to_all_domains_s`` <= 180 on a 2-core machine, ``processes_left`` == 0.

    python benchmarks/first_run.py --json FILE
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from figures import emit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402
from tests.first_run.platform import bring_up, running_platform, stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        home = Path(tmp)
        with running_platform(home, free_port(), free_port(), home / "platform-dev.log") as p:
            seconds = bring_up(p)
            processes_seen = len(p.seen)
            left = stop(p)
    emit(
        {
            "time_to_all_domains_s": round(seconds["all_domains"], 1),
            "dagster_up_s": round(seconds["dagster_up"], 1),
            "after_dagster_up_s": {
                k: round(v, 1) for k, v in seconds.items() if k not in ("dagster_up", "all_domains")
            },
            "processes_seen": processes_seen,
            "processes_left": left,
            "goal": {"time_to_all_domains_s": 180, "processes_left": 0},
        },
        args.json,
    )


if __name__ == "__main__":
    main()
