"""``platform-dev`` (what ``make dev`` runs): the whole local platform in one terminal.

Starts Dagster (webserver + daemon, ``dagster dev``) on the embedded defaults, the barrel
scorer (``wine-scorer``: scores each reading within about a second of its write and reports
the day's progress to Dagster), the barrel simulator (``wine-sim run``: seeds 200 white-wine
barrels into an empty store, then moves every barrel's reading every 10 s; ``SIMULATE=0``
leaves it off) and the prediction service (``wine-api`` on 127.0.0.1:8000, which sends
nothing by itself), prints where each one is,
and stops all of them, children included, on Ctrl-C or SIGTERM, or as soon as one of them
exits by itself.

Each process runs in a session of its own, so the terminal's Ctrl-C reaches only this
launcher, which then stops them in order: a graceful SIGTERM to each session's leader, then
SIGKILL for whatever is still alive of every process it ever saw below it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from platform_core.settings import PROJECT_ROOT, init_dagster_home, platform_home

#: Seconds a process gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 20.0


@dataclass
class Service:
    """One process the launcher started, and every descendant pid seen under it."""

    name: str
    proc: subprocess.Popen
    seen: set[int] = field(default_factory=set)


def _children_by_parent() -> dict[int, list[int]]:
    """``ppid → [pid]`` of every process, from ``/proc`` (empty where there is none)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    tree, found, todo = _children_by_parent(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie only awaits its parent's wait)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie has exited: only its parent's wait is missing
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop_all(services: list[Service], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to every service (the simulator and API first, Dagster last), wait, then
    SIGKILL every process ever seen below them that is still alive."""
    for service in services:
        service.seen |= descendants(service.proc.pid)
    for service in reversed(services):
        if service.proc.poll() is None:
            _kill(service.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for service in reversed(services):
        try:
            service.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"platform-dev: {service.name} did not stop in {grace_s:g}s: killing it")
            _kill(service.proc.pid, signal.SIGKILL)
            service.proc.wait()
    leftovers = {pid for s in services for pid in s.seen if alive(pid)}
    for pid in leftovers:
        _kill(pid, signal.SIGKILL)


def _bin(name: str) -> str:
    """A console script of this environment (the venv's ``bin`` folder)."""
    return str(Path(sys.executable).parent / name)


def commands(args: argparse.Namespace) -> list[tuple[str, list[str], Path]]:
    """``(name, argv, working directory)`` of each service, Dagster first."""
    home = Path(os.environ["DAGSTER_HOME"])
    dagster = [_bin("dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml")]
    dagster += ["-h", args.host, "-p", str(args.port)]
    # Dagster's own cwd is its home: there, the instance's dagster.yaml is the one in the
    # folder, and dagster dev does not warn about the repository root's copy.
    services = [("dagster", dagster, home), ("wine-scorer", [_bin("wine-scorer")], PROJECT_ROOT)]
    if args.simulate:
        sim = [_bin("wine-sim"), "run", "--interval", "10", "--seed-barrels", "200"]
        services.append(("wine-sim", sim, PROJECT_ROOT))
    api = [_bin("wine-api"), "--host", args.host, "--port", str(args.api_port)]
    services.append(("wine-api", api, PROJECT_ROOT))
    return services


def banner(args: argparse.Namespace) -> str:
    sim = (
        f"200 barrels in {platform_home() / 'readings.db'}, a change every 10 s "
        "(SIMULATE=0 make dev: off)"
        if args.simulate
        else "off (SIMULATE=0)"
    )
    return "\n".join(
        [
            "",
            "Winery & brewery platform",
            f"  Dagster UI        http://{args.host}:{args.port}  (first start builds the beer "
            "table, models and profiles by itself: ~2 min)",
            f"  Wine API          http://{args.host}:{args.api_port}  (/docs; scores nothing "
            "until asked)",
            f"  Barrel simulator  {sim}",
            "  Barrel scorer     wine-scorer: each reading scored within ~1 s (waits for the "
            "first champion)",
            f"  Instance          {os.environ['DAGSTER_HOME']}; data in {platform_home()}",
            "  Second terminal   source .venv/bin/activate   (then wine-send-batch normal)",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="platform-dev", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address of the UI and API")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    parser.add_argument("--api-port", type=int, default=8000, help="wine-api port")
    parser.add_argument(
        "--no-simulate",
        dest="simulate",
        action="store_false",
        default=os.environ.get("SIMULATE", "1") != "0",
        help="do not start the barrel simulator (same as SIMULATE=0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    init_dagster_home(Path(os.environ["DAGSTER_HOME"]))
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    services: list[Service] = []
    status = 0
    try:
        for name, argv_, cwd in commands(args):
            proc = subprocess.Popen(argv_, cwd=cwd, start_new_session=True)
            services.append(Service(name, proc))
        print(banner(args), flush=True)
        while not stopping:
            for service in services:
                service.seen |= descendants(service.proc.pid)
                code = service.proc.poll()
                if code is not None:
                    print(f"platform-dev: {service.name} exited with {code}; stopping the rest")
                    status, stopping = code or 1, True
                    break
            time.sleep(1.0)
    finally:
        print("platform-dev: stopping…", flush=True)
        stop_all(services)
        print("platform-dev: stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
