"""docker/ is consistent with itself and with the repository (no Docker engine runs here).

Every file the compose file and the Dockerfile refer to exists, every ``${VAR}`` has an
example in ``.env.example`` (and every example is used), every ``env:`` the production
``dagster.yaml``/``workspace.yaml`` read reaches each Dagster service, services and ports line
up, and no credential is written in a file.
"""

import importlib.metadata
import importlib.util
import re
import shlex

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.topology.compose import DOCKER, INTERPOLATION, SERVICES, env_example

DAGSTER_SERVICES = ["code-beer", "code-wine", "webserver", "daemon"]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", re.IGNORECASE)


def env_refs(node) -> set[str]:
    """Names of ``{env: NAME}`` references anywhere in a Dagster YAML document."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node)) if node else set()
    return set()


def command(service: str) -> list[str]:
    cmd = SERVICES[service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def option(argv: list[str], *names: str) -> str:
    for i, arg in enumerate(argv):
        if arg in names:
            return argv[i + 1]
    raise AssertionError(f"{names} not in {argv}")


def test_every_variable_has_an_example_and_every_example_is_used():
    text = (DOCKER / "docker-compose.yml").read_text()
    used = set(INTERPOLATION.findall(text))
    examples = env_example()
    assert used - set(examples) == set(), "variables without an example in .env.example"
    assert set(examples) - used == set(), "examples in .env.example no service reads"
    assert all(examples.values()), "every example has a value"


def test_depends_on_names_services_with_the_condition_they_can_meet():
    for name, service in SERVICES.items():
        deps = service.get("depends_on", {})
        deps = (
            {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        )
        for dep, spec in deps.items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert "restart" not in SERVICES[dep], f"{dep} is one-shot, never restarted"


def test_build_context_dockerfile_and_copied_paths_exist():
    built = [s for s in SERVICES.values() if "build" in s]
    assert {n for n, s in SERVICES.items() if "build" in s} >= {*DAGSTER_SERVICES, "wine-api"}
    for service in built:
        context = (DOCKER / service["build"]["context"]).resolve()
        dockerfile = context / service["build"]["dockerfile"]
        assert context == REPO_ROOT and dockerfile.is_file()
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                *sources, _dest = line.split()[1:]
                for src in sources:
                    assert (context / src).exists(), f"Dockerfile copies missing {src}"


def test_ports_are_unique_and_match_what_the_processes_listen_on():
    published = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, _, container = mapping.rpartition(":")
            assert host not in published, f"{name} and {published.get(host)} publish {host}"
            published[host] = name
            if "command" in service and service.get("build"):
                assert option(command(name), "-p", "--port") == container
    for name in ("code-beer", "code-wine"):
        port = option(command(name), "-p", "--port")
        assert SERVICES[name]["healthcheck"]["test"][-1] == port


def test_workspace_points_at_the_code_servers_and_their_modules():
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    env = SERVICES["webserver"]["environment"]
    locations = {}
    for entry in workspace["load_from"]:
        grpc = entry["grpc_server"]
        host, port = env[grpc["host"]["env"]], env[grpc["port"]["env"]]
        locations[grpc["location_name"]] = (host, port)
    assert set(locations) == {"beer", "wine"}
    for location, (host, port) in locations.items():
        assert host in SERVICES, f"workspace host {host} is not a service"
        argv = command(host)
        assert argv[:3] == ["dagster", "code-server", "start"]
        assert option(argv, "--location-name") == location
        assert option(argv, "-p", "--port") == port
        module = option(argv, "-m", "--module-name")
        assert module == f"{location}_assets.definitions"
        assert importlib.util.find_spec(module) is not None
        # named: a module may hold more than one Definitions object (merged parts)
        assert option(argv, "-a", "--attribute") == "defs"
    for name in ("webserver", "daemon"):
        assert (
            option(command(name), "-w", "--workspace") == "/opt/dagster/dagster_home/workspace.yaml"
        )
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    assert "COPY docker/dagster.yaml docker/workspace.yaml ${DAGSTER_HOME}/" in dockerfile


@pytest.mark.parametrize("name", DAGSTER_SERVICES)
def test_every_instance_and_workspace_setting_reaches_each_dagster_service(name):
    needed = env_refs(yaml.safe_load((DOCKER / "dagster.yaml").read_text())) | env_refs(
        yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    )
    assert {"DAGSTER_PG_PASSWORD", "DAGSTER_COMPUTE_LOGS_BUCKET"} <= needed
    assert needed - set(SERVICES[name]["environment"]) == set()


def test_every_command_is_an_installed_or_declared_entry_point():
    import tomllib

    scripts = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    installed = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    for name, service in SERVICES.items():
        if service.get("build"):
            exe = command(name)[0]
            assert exe in scripts | installed, f"{name}: no console script {exe}"
    assert "wine-api" in scripts, "the wine prediction service's command"


def test_no_credential_is_written_in_a_file():
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(str(value)), f"{name}.{key} is written inline"
        for key, value in (service.get("environment") or {}).items():
            if "://" in str(value) and "@" in str(value):
                assert "${DAGSTER_PG_PASSWORD}" in value, f"{name}.{key} embeds a password"
    instance = (DOCKER / "dagster.yaml").read_text()
    assert "password: {env: DAGSTER_PG_PASSWORD}" in instance
    assert env_example()["DAGSTER_PG_PASSWORD"] == "change-me"


def test_production_instance_config_is_valid(monkeypatch):
    """Dagster's own schema accepts docker/dagster.yaml once the variables are set."""
    # Private: Dagster 1.13 validates an instance's dagster.yaml publicly only by building the
    # instance, which connects to its PostgreSQL (pyproject's per-file ignore of PLC2701).
    from dagster._core.instance.config import dagster_instance_config

    for var in env_refs(yaml.safe_load((DOCKER / "dagster.yaml").read_text())):
        monkeypatch.setenv(var, "5432" if var.endswith(("PORT", "RUNS")) else "example")
    config, _ = dagster_instance_config(str(DOCKER))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "platform/lane", "value": "scoring", "limit": 1} in limits
    assert {"key": "platform/lane", "value": "background", "limit": 1} in limits
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_retries"]["max_retries"] == 1
    # A PostgreSQL restart can fail a step (its event write gives up): that run is retried too
    # (test_topology.py's restart scenario requires the retry to succeed).
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is True
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"
    assert "postgres" in config["storage"]


def waits_for(name: str) -> set[str]:
    """Every service ``name`` waits for, directly or through another."""
    seen: set[str] = set()
    todo = list(SERVICES[name].get("depends_on", {}))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo += list(SERVICES[dep].get("depends_on", {}))
    return seen


@pytest.mark.parametrize("name", [*DAGSTER_SERVICES, "wine-api"])
def test_instance_users_start_after_the_schema_exists(name):
    """Processes starting together on an empty database race to create the same tables."""
    assert command("instance-migrate") == ["dagster", "instance", "migrate"]
    assert {"instance-migrate", "postgres"} <= waits_for(name)


#: Dagster's opt-ins the platform runs with everywhere: one planned event per asset for a
#: single-run backfill, and its per-day materializations stored in batches.
DAGSTER_OPT_INS = {
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
    "DAGSTER_EVENT_BATCH_SIZE": "100",
}


@pytest.mark.parametrize("name", DAGSTER_SERVICES)
@pytest.mark.parametrize(("var", "value"), DAGSTER_OPT_INS.items())
def test_dagster_runs_the_same_way_locally_and_in_production(name, var, value):
    """The Makefile (``dagster dev``, tests, benchmarks) and the compose environment
    (production) must not differ in how Dagster stores a backfill's events."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(rf"^export {var} \?= {value}$", makefile, re.MULTILINE)
    assert str(SERVICES[name]["environment"][var]) == value


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if s.get("ports")])
def test_published_ports_are_on_the_hosts_loopback_only(name):
    """The Dagster UI has no login and moto accepts any key: nothing is published beyond the
    host (other machines go through an authenticating proxy, docker/README.md)."""
    for mapping in SERVICES[name]["ports"]:
        assert isinstance(mapping, str) and mapping.startswith("127.0.0.1:"), (name, mapping)
        assert mapping.count(":") == 2, f"{name}: {mapping} is not 127.0.0.1:HOST:CONTAINER"


def test_wine_api_serves_its_container_network_only_with_a_required_token():
    """wine-api binds 0.0.0.0 in its container, which it refuses without WINE_API_TOKEN: the
    compose file must pass one, and refuse to start (``${VAR:?…}``) when it is unset."""
    from wine_assets.monitoring.api import TOKEN_VAR, is_loopback

    assert not is_loopback(option(command("wine-api"), "--host"))
    token = SERVICES["wine-api"]["environment"][TOKEN_VAR]
    match = INTERPOLATION.fullmatch(str(token))
    assert match and match.group(1) == TOKEN_VAR and str(token).startswith("${WINE_API_TOKEN:?")
    # the rest of the environment is the platform's, as for every other service
    env = SERVICES["wine-api"]["environment"]
    assert {k: v for k, v in env.items() if k != TOKEN_VAR} == SERVICES["daemon"]["environment"]
    assert all(TOKEN_VAR not in (s.get("environment") or {}) for n, s in SERVICES.items()
               if n != "wine-api")  # fmt: skip
