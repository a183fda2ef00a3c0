"""``platform-models``: list registered model versions.

Approval and rollback are not here: they are materializations of the model's champion asset
(run config ``{version, approver}``), so the asset graph records who decided and when.
"""

from __future__ import annotations

import argparse
import json
import sys

from platform_core.registry import ModelRegistry
from platform_core.resources import storage_resource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform-models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="versions of a model, newest last")
    ls.add_argument("name", help="model name, e.g. beer_ibu")
    args = parser.parse_args(argv)

    with storage_resource().process_config_and_initialize_cm() as storage:
        registry = ModelRegistry(storage, args.name)
        if not registry.versions():
            print(
                f"platform-models: no version of {args.name} in {storage.root} "
                "(setting PLATFORM_STORAGE_ROOT). Fix: materialize its candidate in the "
                "Dagster UI (`make dev` trains the first ones by itself)",
                file=sys.stderr,
            )
            return 2
        for v in registry.versions():
            print(
                json.dumps(
                    {
                        "version": v.version,
                        "status": v.status,
                        "created_at": v.created_at,
                        "metrics": v.metrics,
                        "decided_by": v.history[-1].get("by"),
                    }
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
