"""Mutation check: break the code that guards data on purpose and see which tests notice.

Each mutation is a text substitution in one module that guards data (model registry, raw
landing, promotion, model store, row-count check, barrel sensor; barrel snapshot, readings
store, drop sensor; production's run retries). The script copies the
repository into a temporary folder, applies one mutation at a time there (never in the working
tree: others may be editing it), runs only the tests that claim the guarded behaviour, and
reports which of them failed. A mutation is *caught* when at least one of its tests fails.

Before any mutation the same tests run on the unmutated copy: they must pass, or a failure
would prove nothing. Every original text must occur exactly once in its file, so when the code
moves the script stops and says which mutation to update instead of reporting a false "caught".

The copy is what gets imported: pytest runs with the copy as working directory and first
entry of PYTHONPATH (ahead of the virtualenv's editable install of the repository, which is a
meta-path finder consulted after ``sys.path``), and a test written into the copy asserts that
``platform_core``, ``beer_assets``, ``wine_assets`` and ``tests`` come from it in each run.

    python benchmarks/mutations.py --json FILE [--only NAME ...] [--rev REV] [--list]

Without ``--rev`` the copy is the working tree's files (tracked and untracked, not ignored);
with ``--rev HEAD`` (or any commit) it is that commit's tree. ``caught`` / ``total`` in the
JSON; exit status 1 when a mutation survives or the baseline fails.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from figures import emit

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the broken promise, in words
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]  # pytest node ids or files, relative to the repository


MUTATIONS = [
    Mutation(
        "champion_loaded_unverified",
        "the champion's files are loaded without checking their sha256",
        "platform_core/model_store.py",
        "        return champion, registry.verify(champion)\n",
        "        return champion, {\n"
        "            name: registry.storage.read_bytes(registry.file_key(champion.version, name))\n"
        "            for name in champion.files\n"
        "        }\n",
        ("tests/beer/test_pipeline.py::test_tampered_champion_is_refused",),
    ),
    Mutation(
        "row_count_not_blocking",
        "row_count_not_falling no longer blocks what is downstream of beers_clean",
        "beer_assets/ingest/assets.py",
        "@dg.asset_check(asset=CLEAN, blocking=True, description=ROW_COUNT_CHECK_DESCRIPTION)",
        "@dg.asset_check(asset=CLEAN, blocking=False, description=ROW_COUNT_CHECK_DESCRIPTION)",
        ("tests/beer/test_pipeline.py::test_lost_raw_data_fails_row_count_and_blocks",),
    ),
    Mutation(
        "registry_overwrites_model_files",
        "the registry writes model files with overwrite=True",
        "platform_core/registry.py",
        "self.storage.write_bytes(self.file_key(number, file_name), data, overwrite=False)",
        "self.storage.write_bytes(self.file_key(number, file_name), data, overwrite=True)",
        ("tests/core/test_registry.py",),
    ),
    Mutation(
        "landing_overwrites_pages",
        "raw landing writes its pages with overwrite=True",
        "beer_assets/ingest/landing.py",
        'self.storage.write_bytes(f"{self.folder}/{name}", body, overwrite=False)',
        'self.storage.write_bytes(f"{self.folder}/{name}", body, overwrite=True)',
        ("tests/beer/test_landing.py",),
    ),
    Mutation(
        "landing_overwrites_manifest",
        "raw landing writes its manifest with overwrite=True",
        "beer_assets/ingest/landing.py",
        'f"{self.folder}/{MANIFEST}", json.dumps(manifest, indent=1).encode(), overwrite=False',
        'f"{self.folder}/{MANIFEST}", json.dumps(manifest, indent=1).encode(), overwrite=True',
        ("tests/beer/test_landing.py",),
    ),
    Mutation(
        "scorer_moves_without_champion",
        "the barrel scorer moves its position past readings while there is no champion",
        "wine_assets/quality/consumer.py",
        "        champion = self.champion()  # NotReady: nothing read, nothing moved\n",
        "        try:\n"
        "            champion = self.champion()\n"
        "        except NotReady:\n"
        "            self.position = self.store.max_seq()\n"
        "            self.ledger.commit([], self.position)\n"
        "            raise\n",
        (
            "tests/wine/test_quality_consumer.py::"
            "test_without_a_champion_the_scorer_waits_and_keeps_its_position",
        ),
    ),
    Mutation(
        "promotion_skips_checksum",
        "candidate_gate does not verify the candidate's files",
        "platform_core/promotion.py",
        "        registry.verify(candidate)\n    except ChecksumMismatchError",
        "        pass\n    except ChecksumMismatchError",
        ("tests/core/test_promotion.py",),
    ),
    Mutation(
        "promotion_skips_baseline_rule",
        "candidate_gate no longer rejects a candidate no better than the old system",
        "platform_core/promotion.py",
        "    if baseline_label is not None and m[SCORE] >= m[BASELINE_SCORE]:\n",
        "    if False:\n",
        ("tests/core/test_promotion.py",),
    ),
    Mutation(
        "promotion_baseline_tie_accepted",
        "candidate_gate accepts a candidate only as good as the old system",
        "platform_core/promotion.py",
        "    if baseline_label is not None and m[SCORE] >= m[BASELINE_SCORE]:\n",
        "    if baseline_label is not None and m[SCORE] > m[BASELINE_SCORE]:\n",
        ("tests/core/test_promotion.py",),
    ),
    Mutation(
        "wine_promotion_ignores_interval_coverage",
        "the wine candidate is promoted although its 90 % interval misses its coverage",
        "wine_assets/quality/assets.py",
        "    interval_requirement,\n    requirement_text",
        "    None,\n    requirement_text",
        ("tests/wine/test_quality_promotion.py",),
    ),
    # Beyond issue 18's table: the other modules that guard data.
    Mutation(
        "scorer_scores_quarantined_readings",
        "the barrel scorer scores readings it should quarantine",
        "wine_assets/quality/consumer.py",
        "        held = reasons.notna().to_numpy()\n",
        "        held = np.zeros(len(readings), dtype=bool)\n",
        (
            "tests/wine/test_quality_consumer.py::"
            "test_quarantined_readings_are_kept_with_their_reason_and_others_scored",
        ),
    ),
    Mutation(
        "sqlite_older_score_replaces_newer",
        "the SQLite readings store lets an older reading's score replace a newer one's",
        "wine_assets/readings/sqlite_store.py",
        '    + " WHERE excluded.reading_seq >= predictions.reading_seq"\n',
        '    + ""\n',
        ("tests/wine/test_readings_store.py::test_older_prediction_does_not_replace_newer",),
    ),
    Mutation(
        "dynamodb_older_score_replaces_newer",
        "the DynamoDB readings store lets an older reading's score replace a newer one's",
        "wine_assets/readings/dynamodb_store.py",
        '"(attribute_not_exists(#r) OR #r <= :r)",',
        '"(attribute_not_exists(#r) OR #r <= :r OR #r > :r)",',
        ("tests/wine/test_readings_store.py::test_older_prediction_does_not_replace_newer",),
    ),
    Mutation(
        "drop_cursor_ignores_mtime",
        "the drop sensor's cursor keeps only a file's size: a same-size rewrite is never read",
        "wine_assets/profiles/drop.py",
        '        base = f"{self.size}-{self.mtime_ns}"\n',
        '        base = f"{self.size}"\n',
        ("tests/wine/test_profiles_sensor.py",),
    ),
    Mutation(
        "run_retries_skip_step_failures",
        "production does not retry a run whose step failed (e.g. its event write met a "
        "PostgreSQL restart)",
        "docker/dagster.yaml",
        "  retry_on_asset_or_op_failure: true\n",
        "  retry_on_asset_or_op_failure: false\n",
        ("tests/topology/test_compose.py::test_production_instance_config_is_valid",),
    ),
]

#: Written into the copy and run with every mutation's tests: proves the copy is imported.
COPY_GUARD = "tests/test_zz_mutation_copy.py"
COPY_GUARD_TEXT = '''"""Written by benchmarks/mutations.py into its copy: the copy is imported."""

import os
from pathlib import Path


def test_modules_come_from_the_mutation_copy():
    import beer_assets
    import platform_core
    import tests
    import wine_assets

    copy = Path(os.environ["MUTATION_COPY"]).resolve()
    for module in (platform_core, beer_assets, wine_assets, tests):
        assert copy in Path(module.__file__).resolve().parents, module.__file__
'''


class MutationSetupError(RuntimeError):
    """A mutation no longer applies (its original text moved) or the copy is broken."""


def repository_files(rev: str | None) -> list[str] | None:
    """Files of the working tree to copy (tracked and untracked, not ignored); None with rev."""
    if rev is not None:
        return None
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    return [name for name in out.decode().split("\0") if name]


def make_copy(dest: Path, rev: str | None) -> None:
    if rev is None:
        for name in repository_files(rev) or []:
            src = REPO / name
            if not src.is_file():  # deleted in the working tree, not yet committed
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    else:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    (dest / COPY_GUARD).write_text(COPY_GUARD_TEXT)


def check_applies(copy: Path, mutations: list[Mutation]) -> None:
    """Every original text occurs exactly once; otherwise stop before running anything."""
    problems = []
    for m in mutations:
        path = copy / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            problems.append(
                f"{m.name}: original text found {count} times in {m.file} (expected once); "
                f"the code moved, update the mutation:\n    {m.original!r}"
            )
        for test in m.tests:
            if not (copy / test.split("::", 1)[0]).is_file():
                problems.append(f"{m.name}: test file of {test} does not exist")
    if problems:
        raise MutationSetupError("\n".join(problems))


def run_tests(copy: Path, tests: list[str], timeout_s: float) -> tuple[int, dict[str, str], str]:
    """pytest on ``tests`` inside the copy: (exit code, failed test id → first line of its
    failure, output tail)."""
    report = copy / ".mutation-report.xml"
    report.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "PYTHONDONTWRITEBYTECODE": "1",  # no stale .pyc between a mutation and its revert
        "MUTATION_COPY": str(copy),
        # the data folder stays the repository's (git-ignored, so not in the copy)
        "PLATFORM_DATA_DIR": os.environ.get("PLATFORM_DATA_DIR", str(REPO / "data")),
    }
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *tests,
        COPY_GUARD,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
    ]
    try:
        proc = subprocess.run(
            argv, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-2000:]
        tail = tail.decode() if isinstance(tail, bytes) else tail
        return -1, {"<timeout>": f"no result within {timeout_s:g} s"}, tail
    failed = {}
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            problem = case.find("failure")
            problem = case.find("error") if problem is None else problem
            if problem is not None:
                message = (problem.get("message") or "").strip().splitlines() or [""]
                failed[f"{case.get('classname')}::{case.get('name')}"] = message[0][:300]
    return proc.returncode, failed, (proc.stdout + proc.stderr)[-2000:]


def apply(copy: Path, m: Mutation) -> str:
    path = copy / m.file
    text = path.read_text()
    path.write_text(text.replace(m.original, m.replacement, 1))
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", action="append", help="run only this mutation (repeatable)")
    parser.add_argument("--rev", help="copy this commit's tree instead of the working tree")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run")
    args = parser.parse_args()

    mutations = MUTATIONS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            parser.error(f"unknown mutation(s): {sorted(unknown)}")
        mutations = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in mutations:
            print(f"{m.name}: {m.what}\n    {m.file}; tests: {', '.join(m.tests)}")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="mutations-"))
    copy = tmp / "repo"
    copy.mkdir()
    started = time.perf_counter()
    try:
        make_copy(copy, args.rev)
        check_applies(copy, mutations)
        all_tests = list(dict.fromkeys(t for m in mutations for t in m.tests))
        baseline: dict = {"skipped": True}
        if not args.skip_baseline:
            t0 = time.perf_counter()
            code, failed, tail = run_tests(copy, all_tests, args.timeout)
            baseline = {
                "passed": code == 0,
                "tests": all_tests,
                "failed_tests": failed,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(
                f"baseline: {'passed' if code == 0 else 'FAILED'} {failed or ''}", file=sys.stderr
            )
            if code != 0:
                print(tail, file=sys.stderr)
        results = []
        for m in mutations:
            t0 = time.perf_counter()
            original = apply(copy, m)
            try:
                code, failed, tail = run_tests(copy, list(m.tests), args.timeout)
            finally:
                (copy / m.file).write_text(original)
            guard_failed = any("test_modules_come_from_the_mutation_copy" in f for f in failed)
            if guard_failed:
                raise MutationSetupError(f"{m.name}: the copy was not what pytest imported\n{tail}")
            caught = code != 0 and bool(failed)
            if code not in (0, 1):  # 2-5: interrupted, internal error, usage, nothing collected
                caught = False
                failed[f"<pytest exit code {code}>"] = (tail.strip().splitlines() or [""])[-1]
            results.append(
                {
                    "name": m.name,
                    "what": m.what,
                    "file": m.file,
                    "tests": list(m.tests),
                    "caught": caught,
                    "failed_tests": sorted(failed),
                    "failures": failed,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            print(
                f"{m.name}: {'caught by ' + ', '.join(failed) if caught else 'SURVIVED'}",
                file=sys.stderr,
            )
            if not caught:
                print(tail, file=sys.stderr)
    except MutationSetupError as exc:
        print(f"mutations: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"copy kept in {copy}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    caught = sum(r["caught"] for r in results)
    figures = {
        "caught": caught,
        "total": len(results),
        "survived": [r["name"] for r in results if not r["caught"]],
        "baseline": baseline,
        "source": args.rev or "working tree",
        "mutations": results,
        "seconds": round(time.perf_counter() - started, 1),
        "goal": "caught == total, baseline passed",
        "goal_met": caught == len(results) and baseline.get("passed", True),
    }
    emit(figures, args.json)
    return 0 if figures["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
