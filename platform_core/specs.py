"""Model recipes ("specs") as JSON, so the registry can store and re-evaluate them."""

from dataclasses import asdict
from typing import Any, Self


class JsonSpec:
    """Mixin for frozen dataclasses with a ``features`` tuple: to/from plain JSON."""

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        data = asdict(self)  # type: ignore[call-overload]
        data["features"] = list(data["features"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Inverse of ``to_json``."""
        return cls(**{**data, "features": tuple(data["features"])})
