"""The production topology on loopback: the processes of docker/docker-compose.yml, no Docker.

PostgreSQL (installed binaries), moto's standalone server (S3 + DynamoDB), one
``dagster code-server start`` per location, ``dagster-webserver`` on ``docker/workspace.yaml``
and ``dagster-daemon run`` with ``docker/dagster.yaml`` as the instance: the same two files
the containers use, filled from the same variables (the compose file's environment with
loopback hosts and ports). Every process logs to a folder of ``test-artifacts/`` and runs in its
own process group, so a stop also ends the run workers a code server has started. Used by
the ``topology`` tests (conftest.py) and by benchmarks/topology.py.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import requests

from tests.conftest import REPO_ROOT, free_port, wait_http
from tests.graphql import graphql
from tests.pg_server import PostgresServer
from tests.polling import wait_for
from tests.topology.compose import INTERPOLATION, SERVICES, env_example
from wine_assets.readings.store import open_store

BIN = Path(sys.executable).parent
LOCATIONS = {"beer": "beer_assets.definitions", "wine": "wine_assets.definitions"}
#: Runs finished one way or the other (GraphQL/PostgreSQL status names).
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
ACTIVE = "('QUEUED', 'NOT_STARTED', 'STARTING', 'STARTED', 'CANCELING')"
SNAPSHOT_JOB = "barrel_snapshot"


class Service:
    """One long-running process, logging to ``<logs>/<name>.log`` (appended on restart)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.argv, self.env, self.logs = name, argv, env, logs
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.logs / f"{self.name}.log", "ab") as log:
            log.write(f"\n=== start {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: children end with it
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (the process and what it started)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a container or machine dying would."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)


def stop_all(services: list[Service], timeout_s: float = 10.0) -> None:
    """SIGTERM every group at once, SIGKILL whatever is still running after ``timeout_s``."""
    for service in services:
        service.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for service in services:
        if service.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        service.kill()


def stored_kinds(*names: str) -> list[str]:
    """How the event log stores these event types (``RUN_START`` is ``PIPELINE_START``)."""
    from dagster import DagsterEventType

    return [DagsterEventType[name].value for name in names]


def compose_env(values: dict[str, str], where: dict[str, str]) -> dict[str, str]:
    """The compose file's platform environment, ``${VAR}`` filled from ``values``, with the
    host/port/path variables in ``where`` replaced (loopback instead of service names)."""
    env = {}
    for key, raw in SERVICES["daemon"]["environment"].items():
        if raw is None:  # no value: compose passes the shell's through, else leaves it unset
            continue
        env[key] = INTERPOLATION.sub(lambda m: values[m.group(1)], str(raw))
    missing = set(where) - set(env)
    assert not missing, f"not in the compose environment: {missing}"
    return env | where


@dataclass
class Topology:
    """Handles on the running topology, for the scenarios."""

    env: dict[str, str]
    postgres: PostgresServer
    moto_url: str
    webserver_url: str
    artifacts: Path
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.env["PLATFORM_STORAGE_ROOT"].removeprefix("s3://").split("/", 1)[0]

    @property
    def readings_url(self) -> str:
        """The readings store as the test process opens it (endpoint in the URL)."""
        table = self.env["WINE_READINGS_STORE"].removeprefix("dynamodb://")
        return f"dynamodb://{table}?region={self.env['AWS_REGION']}&endpoint={self.moto_url}"

    def s3(self):
        return boto3.client(
            "s3",
            endpoint_url=self.moto_url,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def s3_keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def sql(self, query: str, *args: Any) -> list[tuple]:
        """A query on the Dagster instance's PostgreSQL database."""
        conn = psycopg2.connect(self.postgres.dsn(self.env["DAGSTER_PG_DB"]), connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()
        finally:
            conn.close()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.webserver_url, query, variables, timeout_s=30)

    def launch(
        self, location: str, job: str, run_config: dict | None = None, partition: str = ""
    ) -> str:
        """Submit ``job`` (of ``partition``) through the webserver (queued; the daemon starts
        it); the run id."""
        from dagster_graphql import DagsterGraphQLClient

        host, _, port = self.webserver_url.removeprefix("http://").partition(":")
        client = DagsterGraphQLClient(host, port_number=int(port))
        return client.submit_job_execution(
            job,
            repository_location_name=location,
            run_config=run_config or {},
            tags={"dagster/partition": partition} if partition else None,
        )

    def run_status(self, run_id: str) -> str:
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }",
            {"id": run_id},
        )
        return data["runOrError"]["status"]

    def wait_run(self, run_id: str, timeout_s: float = 180.0) -> str:
        """The run's final status (polled through the webserver)."""
        return wait_for(
            lambda: self.run_status(run_id),
            timeout_s,
            f"run {run_id} to finish",
            until=lambda status: status in TERMINAL,
        )

    def daemon_healthy(self, since: float = 0.0) -> bool:
        """Every required daemon reports healthy, with a heartbeat newer than ``since``
        (a SIGKILLed daemon's last heartbeats stay "healthy" for a while)."""
        data = self.graphql(
            "{ instance { daemonHealth { allDaemonStatuses "
            "{ daemonType healthy required lastHeartbeatTime } } } }"
        )
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        return all(
            s["healthy"] and (s["lastHeartbeatTime"] or 0) > since
            for s in statuses
            if s["required"]
        )

    def start_daemon(self) -> None:
        started = time.time()
        self.services["daemon"].start()
        wait_for(lambda: self.daemon_healthy(started), 90, "the daemon's fresh heartbeats")


def settled(topology: Topology) -> bool:
    """Every barrel's newest reading has its prediction and the scorer's position is the
    store's newest seq (every write recorded in its ledger)."""
    from wine_assets.quality.ledger import open_ledger

    with open_store(topology.readings_url) as store:
        current = {r.barrel_id: r.seq for r in store.all()}
        scored = {p.barrel_id: p.reading_seq for p in store.predictions()}
        position = open_ledger(store).cursor()
        top = store.max_seq()
    return bool(current) and scored == current and position == top


def sensor_runs(topology: Topology) -> list[tuple[str, str, str]]:
    """(run id, run key, status) of every run the barrel history sensor requested."""
    return topology.sql(
        "SELECT r.run_id, k.value, r.status FROM runs r "
        "JOIN run_tags s ON s.run_id = r.run_id AND s.key = 'dagster/sensor_name' "
        "AND s.value = 'barrel_history_sensor' "
        "JOIN run_tags k ON k.run_id = r.run_id AND k.key = 'dagster/run_key'"
    )


def _grpc_serving(port: int) -> bool:
    """The code server answers the standard gRPC health check of its ``DagsterApi`` service."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with socket.socket() as probe:  # not listening yet: no gRPC call
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return False
    request = health_pb2.HealthCheckRequest(service="DagsterApi")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _locations_loaded(url: str) -> bool:
    body = requests.post(
        f"{url}/graphql",
        json={
            "query": "{ workspaceOrError { ... on Workspace { locationEntries { name "
            "locationOrLoadError { __typename } } } } }"
        },
        timeout=10,
    ).json()
    entries = body["data"]["workspaceOrError"]["locationEntries"]
    loaded = {
        e["name"] for e in entries if e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    }
    return loaded == set(LOCATIONS)


@contextmanager
def running_topology(data_dir: Path, artifacts: Path) -> Iterator[Topology]:
    """Every process of docker-compose.yml except wine-api (wine-scorer included), on
    loopback, logging to ``artifacts`` (emptied first); torn down when the block ends."""
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="topology-"))
    scratch.chmod(0o755)  # the postgres user (server as root) reaches its folder inside
    postgres = PostgresServer(base=scratch / "pg")
    services: dict[str, Service] = {}
    saved_env = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        postgres.init()
        postgres.start()
        example = env_example()
        postgres.create_database(example["DAGSTER_PG_DB"])

        moto_port = free_port()
        moto_url = f"http://127.0.0.1:{moto_port}"
        services["moto"] = Service(
            "moto",
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            {**os.environ},
            artifacts,
        )
        services["moto"].start()
        wait_http(moto_url + "/moto-api/")

        run_id = uuid.uuid4().hex[:8]
        values = example | {
            "DAGSTER_PG_USERNAME": postgres.user,
            "DAGSTER_PG_PASSWORD": postgres.password,
            "DAGSTER_MAX_CONCURRENT_RUNS": "2",  # two cores
            "S3_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "PLATFORM_BUCKET": f"platform-{run_id}",
            "DAGSTER_COMPUTE_LOGS_BUCKET": f"dagster-logs-{run_id}",
            "WINE_READINGS_TABLE": f"barrel-readings-{run_id}",
        }
        ports = {name: free_port() for name in LOCATIONS}
        home = scratch / "dagster_home"
        home.mkdir()
        # The production instance file itself, not a copy that could drift.
        (home / "dagster.yaml").symlink_to(REPO_ROOT / "docker" / "dagster.yaml")
        platform_env = compose_env(
            values,
            {
                "DAGSTER_PG_HOST": "127.0.0.1",
                "DAGSTER_PG_PORT": str(postgres.port),
                "BEER_CODE_SERVER_HOST": "127.0.0.1",
                "BEER_CODE_SERVER_PORT": str(ports["beer"]),
                "WINE_CODE_SERVER_HOST": "127.0.0.1",
                "WINE_CODE_SERVER_PORT": str(ports["wine"]),
                "PLATFORM_DATA_DIR": str(data_dir),
                "PREDICTION_LOG_DSN": postgres.dsn(example["DAGSTER_PG_DB"]),
            },
        )
        env = {
            **os.environ,
            **platform_env,
            "DAGSTER_HOME": str(home),
            "PLATFORM_HOME": str(scratch / "platform"),  # nothing lands in the checkout
        }
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ[var] = env[var]  # the test process's own boto3 clients

        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=env["AWS_REGION"])
        for bucket in (values["PLATFORM_BUCKET"], values["DAGSTER_COMPUTE_LOGS_BUCKET"]):
            s3.create_bucket(Bucket=bucket)  # what the compose file's s3-init does

        # What the compose file's instance-migrate does: one process creates the schema.
        migrate = subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        (artifacts / "instance-migrate.log").write_text(migrate.stdout + migrate.stderr)
        assert migrate.returncode == 0, migrate.stderr[-2000:]
        for name, module in LOCATIONS.items():
            services[f"code-{name}"] = Service(
                f"code-{name}",
                [
                    str(BIN / "dagster"),
                    "code-server",
                    "start",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(ports[name]),
                    "-m",
                    module,
                    "-a",
                    "defs",
                    "--location-name",
                    name,
                ],  # fmt: skip
                env,
                artifacts,
            )
            services[f"code-{name}"].start()
        for name in LOCATIONS:
            wait_for(lambda n=name: _grpc_serving(ports[n]), 180, f"code server {name}")

        workspace = str(REPO_ROOT / "docker" / "workspace.yaml")
        web_port = free_port()
        services["webserver"] = Service(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(web_port),
                "-w",
                workspace,
            ],
            env,
            artifacts,
        )
        services["daemon"] = Service(
            "daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env, artifacts
        )
        services["webserver"].start()
        url = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: _locations_loaded(url), 120, "webserver with both locations")
        topo = Topology(
            env=env,
            postgres=postgres,
            moto_url=moto_url,
            webserver_url=url,
            artifacts=artifacts,
            services=services,
        )
        topo.start_daemon()
        # The compose file's wine-scorer (reports every 10 s here instead of 60: tests wait).
        services["wine-scorer"] = Service(
            "wine-scorer", [str(BIN / "wine-scorer"), "--report-every", "10"], env, artifacts
        )
        services["wine-scorer"].start()
        yield topo
    finally:
        stop_all(list(services.values()))
        if postgres.log.exists():
            shutil.copy(postgres.log, artifacts / "postgres.log")
        postgres.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
