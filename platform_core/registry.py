"""Model registry: candidate → (pending approval) → champion, with checksummed files.

The original beer training pipeline kept new model versions "pending approval"; here every
trained model is registered as a candidate with its metrics, parameters and the sha256 of each
file. A promotion rule decides whether it replaces the champion; loading any version re-hashes
its files and refuses a mismatch, so a tampered or half-copied model is never served.

The registry index is one JSON document per model name in platform storage
(``models/<name>/registry.json``); model files live beside it in ``models/<name>/v<N>/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from platform_core.storage import PlatformStorage, sha256_hex


class Status(StrEnum):
    CANDIDATE = "candidate"
    PENDING_APPROVAL = "pending_approval"
    CHAMPION = "champion"
    REJECTED = "rejected"
    RETIRED = "retired"


class ChecksumMismatchError(RuntimeError):
    """A model file's bytes do not hash to what the registry recorded."""


class RegistryError(RuntimeError):
    """An unknown version or an illegal status change."""


@dataclass
class ModelVersion:
    """One registered model: what it is, how good it was, and how to verify its files."""

    name: str
    version: int
    status: str
    created_at: str
    files: dict[str, str]  # file name → sha256
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    run_id: str | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}"


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of comparing a candidate with the champion on the same evaluation."""

    status: Status
    reason: str


def decide_promotion(
    candidate_score: float,
    champion_score: float | None,
    *,
    require_approval: bool,
    min_improvement: float = 0.0,
    more_data: bool = False,
) -> PromotionDecision:
    """Lower score is better (an error metric). The first model always qualifies.

    A tie is enough when the candidate saw more training rows than the champion: the same
    recipe refitted on new data must be able to replace the stale champion.
    """
    if champion_score is None:
        beats, why = True, f"no champion yet; candidate score {candidate_score:.4f}"
    else:
        beats = candidate_score < champion_score - min_improvement or (
            more_data and candidate_score <= champion_score
        )
        verb = "beats" if beats else "does not beat"
        why = (
            f"candidate {candidate_score:.4f} {verb} champion {champion_score:.4f}"
            f" (required improvement {min_improvement:g})"
        )
    if not beats:
        return PromotionDecision(Status.REJECTED, why)
    return approval_decision(why, require_approval=require_approval)


def approval_decision(why: str, *, require_approval: bool) -> PromotionDecision:
    """A candidate that qualifies (beat the champion, or passed its model's own checks):
    champion now, or pending until a person approves it. The one approval rule of every model."""
    if require_approval:
        return PromotionDecision(Status.PENDING_APPROVAL, why + "; waiting for approval")
    return PromotionDecision(Status.CHAMPION, why)


class ModelRegistry:
    """The registry of one model name, kept in platform storage."""

    def __init__(self, storage: PlatformStorage, name: str) -> None:
        self.storage = storage
        self.name = name
        self._index_key = f"models/{name}/registry.json"

    # -- index ---------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        if not self.storage.exists(self._index_key):
            return []
        raw = json.loads(self.storage.read_bytes(self._index_key))
        return [ModelVersion(**v) for v in raw["versions"]]

    def _save(self, versions: list[ModelVersion]) -> None:
        doc = {"name": self.name, "versions": [asdict(v) for v in versions]}
        self.storage.write_bytes(self._index_key, json.dumps(doc, indent=1).encode())

    def get(self, version: int) -> ModelVersion:
        for v in self.versions():
            if v.version == version:
                return v
        raise RegistryError(f"{self.name}: no version {version}")

    def champion(self) -> ModelVersion | None:
        return next((v for v in self.versions() if v.status == Status.CHAMPION), None)

    def file_key(self, version: int, file_name: str) -> str:
        return f"models/{self.name}/v{version}/{file_name}"

    # -- writes --------------------------------------------------------------------------
    def register(
        self,
        files: dict[str, bytes],
        *,
        metrics: dict[str, float],
        params: dict,
        run_id: str | None = None,
    ) -> ModelVersion:
        """Store the files (append-only) and record a new candidate version."""
        versions = self.versions()
        number = max((v.version for v in versions), default=0) + 1
        checksums = {}
        for file_name, data in files.items():
            self.storage.write_bytes(self.file_key(number, file_name), data, overwrite=False)
            checksums[file_name] = sha256_hex(data)
        mv = ModelVersion(
            name=self.name,
            version=number,
            status=Status.CANDIDATE,
            created_at=_now(),
            files=checksums,
            metrics=metrics,
            params=params,
            run_id=run_id,
            history=[{"at": _now(), "status": Status.CANDIDATE, "reason": "registered"}],
        )
        self._save([*versions, mv])
        return mv

    def set_status(
        self, version: int, status: Status, reason: str, by: str | None = None
    ) -> ModelVersion:
        """Change a version's status; a new champion retires the previous one. ``by`` names
        the person who decided (an approval or a rollback), kept in the history."""
        versions = self.versions()
        target = next((v for v in versions if v.version == version), None)
        if target is None:
            raise RegistryError(f"{self.name}: no version {version}")
        if status == Status.CHAMPION:
            self.verify(target)
            for v in versions:
                if v.status == Status.CHAMPION and v.version != version:
                    v.status = Status.RETIRED
                    v.history.append({"at": _now(), "status": Status.RETIRED, "reason": reason})
        target.status = status
        entry = {"at": _now(), "status": status, "reason": reason}
        target.history.append(entry | ({"by": by} if by else {}))
        self._save(versions)
        return target

    def approve(self, version: int, by: str | None = None, note: str = "") -> ModelVersion:
        """Human approval of a pending candidate makes it champion."""
        mv = self.get(version)
        if mv.status != Status.PENDING_APPROVAL:
            raise RegistryError(f"{mv.label} is {mv.status}, not pending approval")
        return self.set_status(version, Status.CHAMPION, _with_note("approved", note), by)

    def roll_back(self, version: int, by: str, note: str = "") -> ModelVersion:
        """Make an earlier champion (now retired) the champion again."""
        mv = self.get(version)
        if mv.status != Status.RETIRED:
            raise RegistryError(
                f"{mv.label} is {mv.status}: only an earlier champion (retired) can be rolled "
                "back to"
            )
        return self.set_status(version, Status.CHAMPION, _with_note("rolled back to", note), by)

    # -- reads ---------------------------------------------------------------------------
    def verify(self, mv: ModelVersion) -> dict[str, bytes]:
        """Read every file of ``mv`` and check it against the recorded sha256."""
        out = {}
        for file_name, expected in mv.files.items():
            data = self.storage.read_bytes(self.file_key(mv.version, file_name))
            actual = sha256_hex(data)
            if actual != expected:
                raise ChecksumMismatchError(
                    f"{mv.label}/{file_name}: sha256 {actual[:12]}… does not match the "
                    f"registered {expected[:12]}…; refusing to load"
                )
            out[file_name] = data
        return out


def _with_note(reason: str, note: str) -> str:
    return f"{reason}: {note}" if note else reason


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
