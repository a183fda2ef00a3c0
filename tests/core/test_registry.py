"""Registry: candidates, promotion by the rule, approval, and refusal of tampered files."""

import pytest

from platform_core.registry import (
    ChecksumMismatchError,
    ModelRegistry,
    RegistryError,
    Status,
    decide_promotion,
)
from platform_core.storage import AlreadyExistsError, PlatformStorage


def test_first_candidate_qualifies_and_worse_one_does_not() -> None:
    assert decide_promotion(10.0, None, require_approval=False).status == Status.CHAMPION
    worse = decide_promotion(12.0, 10.0, require_approval=False)
    assert worse.status == Status.REJECTED
    assert "does not beat" in worse.reason
    assert decide_promotion(9.0, 10.0, require_approval=False).status == Status.CHAMPION


def test_required_improvement_and_tie_on_more_data() -> None:
    assert decide_promotion(9.9, 10.0, require_approval=False, min_improvement=0.5).status == (
        Status.REJECTED
    )
    assert decide_promotion(10.0, 10.0, require_approval=False).status == Status.REJECTED
    assert decide_promotion(10.0, 10.0, require_approval=False, more_data=True).status == (
        Status.CHAMPION
    )


def test_approval_switch_keeps_a_better_candidate_pending() -> None:
    d = decide_promotion(9.0, 10.0, require_approval=True)
    assert d.status == Status.PENDING_APPROVAL


def test_register_promote_and_retire(any_storage: PlatformStorage) -> None:
    reg = ModelRegistry(any_storage, "m")
    v1 = reg.register({"model.json": b"{1}"}, metrics={"cv_mae": 3.0}, params={})
    v2 = reg.register({"model.json": b"{2}"}, metrics={"cv_mae": 2.0}, params={})
    assert (v1.version, v2.version) == (1, 2)
    assert v1.files["model.json"] != v2.files["model.json"]
    reg.set_status(1, Status.CHAMPION, "first")
    reg.set_status(2, Status.CHAMPION, "better")
    assert reg.champion().version == 2
    assert reg.get(1).status == Status.RETIRED
    assert [h["status"] for h in reg.get(1).history] == ["candidate", "champion", "retired"]


class StaleIndexRegistry(ModelRegistry):
    """A second writer that read the index before another one registered (two trainings at
    once): it believes version 1 is still free."""

    def versions(self) -> list:
        return []


def test_model_files_are_append_only(any_storage: PlatformStorage) -> None:
    """A registration that picks a version already on storage is refused by the registry
    itself; the registered files and the index stay as they were."""
    reg = ModelRegistry(any_storage, "m")
    v1 = reg.register({"model.json": b"a", "spec.json": b"{}"}, metrics={}, params={})
    index = any_storage.read_bytes("models/m/registry.json")
    with pytest.raises(AlreadyExistsError):
        StaleIndexRegistry(any_storage, "m").register(
            {"model.json": b"b", "spec.json": b"{}"}, metrics={}, params={}
        )
    assert any_storage.read_bytes(reg.file_key(1, "model.json")) == b"a"
    assert reg.verify(v1) == {"model.json": b"a", "spec.json": b"{}"}
    assert any_storage.read_bytes("models/m/registry.json") == index


def test_tampered_file_is_refused(any_storage: PlatformStorage) -> None:
    reg = ModelRegistry(any_storage, "m")
    mv = reg.register({"model.json": b'{"trees": []}'}, metrics={}, params={})
    assert reg.verify(mv) == {"model.json": b'{"trees": []}'}
    any_storage.write_bytes(reg.file_key(1, "model.json"), b'{"trees": [666]}')
    with pytest.raises(ChecksumMismatchError, match="refusing to load"):
        reg.verify(mv)
    with pytest.raises(ChecksumMismatchError):
        reg.set_status(1, Status.CHAMPION, "should not happen")
    assert reg.champion() is None


def test_approve_only_pending_versions(local_storage: PlatformStorage) -> None:
    reg = ModelRegistry(local_storage, "m")
    reg.register({"f": b"x"}, metrics={}, params={})
    with pytest.raises(RegistryError, match="not pending"):
        reg.approve(1)
    reg.set_status(1, Status.PENDING_APPROVAL, "better, waiting")
    assert reg.approve(1).status == Status.CHAMPION
    with pytest.raises(RegistryError, match="no version 7"):
        reg.get(7)


def test_rollback_only_to_an_earlier_champion_and_who_decided_is_kept(local_storage) -> None:
    reg = ModelRegistry(local_storage, "m")
    for _ in range(2):
        reg.register({"f": b"x"}, metrics={}, params={})
    reg.set_status(1, Status.CHAMPION, "first")
    with pytest.raises(RegistryError, match="only an earlier champion"):
        reg.roll_back(2, "ana")
    reg.set_status(2, Status.PENDING_APPROVAL, "better, waiting")
    reg.approve(2, "ana", "tasted it")
    assert reg.get(2).history[-1] | {"at": ""} == {
        "at": "",
        "status": Status.CHAMPION,
        "reason": "approved: tasted it",
        "by": "ana",
    }
    assert reg.roll_back(1, "ben").status == Status.CHAMPION
    assert [v.status for v in reg.versions()] == [Status.CHAMPION, Status.RETIRED]
    assert reg.get(1).history[-1]["by"] == "ben"


def test_cli_lists_versions_and_who_decided(tmp_path, monkeypatch, capsys) -> None:
    from platform_core.registry_cli import main

    monkeypatch.setenv("PLATFORM_STORAGE_ROOT", str(tmp_path))
    reg = ModelRegistry(PlatformStorage.local(str(tmp_path)), "m")
    reg.register({"f": b"x"}, metrics={"cv_mae": 1.5}, params={})
    reg.set_status(1, Status.PENDING_APPROVAL, "waiting")
    reg.approve(1, "ana")
    assert main(["list", "m"]) == 0
    out = capsys.readouterr().out
    assert '"status": "champion"' in out and '"decided_by": "ana"' in out
    with pytest.raises(SystemExit):  # approval is the champion asset's, not the CLI's
        main(["approve", "m", "1"])
