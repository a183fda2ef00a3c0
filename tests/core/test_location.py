"""How a code location is assembled: whatever a domain module defines at module scope is in
the location, with no list to edit; service modules are not imported by the loader."""

import sys
import textwrap

import dagster as dg

from platform_core.location import load_location
from platform_core.resources import shared_resources


def write(root, relative: str, text: str = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_a_new_domain_module_is_collected_and_service_modules_are_not(tmp_path, monkeypatch):
    write(tmp_path, "toy_location/__init__.py")
    write(tmp_path, "toy_location/cellar/__init__.py")
    write(
        tmp_path,
        "toy_location/cellar/assets.py",
        """
        import dagster as dg

        @dg.asset(check_specs=[dg.AssetCheckSpec("not_empty", asset="casks")])
        def casks(): ...
        """,
    )
    write(
        tmp_path,
        "toy_location/cellar/jobs.py",
        """
        import dagster as dg
        from toy_location.cellar.assets import casks

        casks_job = dg.define_asset_job("casks_job", selection=[casks])
        casks_daily = dg.ScheduleDefinition(
            name="casks_daily", job=casks_job, cron_schedule="0 1 * * *"
        )
        watchers = [
            dg.SensorDefinition(name=f"watch_{n}", evaluation_fn=lambda _: None, job=casks_job)
            for n in ("a", "b")
        ]
        """,
    )
    write(tmp_path, "toy_location/cellar/api.py", "raise RuntimeError('service imported')\n")
    write(tmp_path, "toy_location/definitions.py", "raise RuntimeError('entry imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)

    defs = load_location("toy_location", resources={"greeting": "hello"})

    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assert graph.get_all_asset_keys() == {dg.AssetKey("casks")}
    assert {k.name for k in graph.asset_check_keys} == {"not_empty"}
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {"casks_job"}
    assert {s.name for s in repo.schedule_defs} == {"casks_daily"}
    assert {s.name for s in repo.sensor_defs} == {"watch_a", "watch_b"}
    assert set(defs.resources) == {"greeting"}
    assert defs.executor is dg.in_process_executor
    assert "toy_location.cellar.api" not in sys.modules


def test_shared_resources_put_tables_and_models_in_the_storage_given(
    local_storage, monkeypatch, tmp_path
):
    monkeypatch.setenv("PLATFORM_STORAGE_ROOT", str(tmp_path / "from-environment"))
    monkeypatch.setenv("MODEL_APPROVAL", "manual")

    @dg.asset
    def cask_table():
        import pandas as pd

        return pd.DataFrame({"cask": [1, 2]})

    resources = shared_resources(storage=local_storage)
    with dg.instance_for_test() as instance:
        assert dg.materialize([cask_table], resources=resources, instance=instance).success
    assert list((tmp_path / "storage").rglob("cask_table*"))
    assert not (tmp_path / "from-environment").exists()
    assert resources["model_store"].storage is local_storage
    assert resources["model_store"].approval == dg.EnvVar("MODEL_APPROVAL")  # from the env
    given = shared_resources(storage=local_storage, approval="auto")
    assert given["model_store"].approval == "auto"
