"""Where drift reports live in storage, how their hour partitions and the service's
``/reports`` paths name them.

Kept apart from the asset module so that wine-api reads reports without loading Dagster's
asset definitions.
"""

from datetime import UTC, datetime, timedelta

from platform_core.storage import PlatformStorage

REPORT_PREFIX = "monitoring/wine_drift"
#: Drift partitions are UTC hours, keyed ``YYYY-MM-DD-HH:00``.
HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"
#: Label of a report over every row of its hour (a run without a positions tag).
WHOLE_HOUR = "hour"
#: What ``/reports/<hour>/<positions>`` accepts (the service's path patterns): an hour folder
#: (``hour_folder_name``) and a report label (``first-last`` or ``hour``).
REPORT_HOUR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}00Z$"
REPORT_POSITIONS_PATTERN = r"^(?:[1-9]\d*-[1-9]\d*|hour)$"


def _report_order(key: str) -> tuple[str, int]:
    """Summary keys in time order: hour folder, then first position (whole hour last)."""
    hour, label = key.split("/")[-3:-1]
    return hour, int(label.split("-")[0]) if label != WHOLE_HOUR else 2**62


def summary_keys(storage: PlatformStorage) -> list[str]:
    """Every report's summary key, oldest first."""
    keys = [k for k in storage.list_keys(REPORT_PREFIX) if k.endswith("/summary.json")]
    return sorted((k for k in keys if len(k.split("/")) >= 4), key=_report_order)


def hour_key(ts: datetime) -> str:
    """The partition of a moment: its UTC hour, ``YYYY-MM-DD-HH:00``."""
    return ts.astimezone(UTC).strftime(HOUR_KEY_FORMAT)


def hour_window(key: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of an hour partition."""
    start = datetime.strptime(key, HOUR_KEY_FORMAT).replace(tzinfo=UTC)
    return start, start + timedelta(hours=1)
