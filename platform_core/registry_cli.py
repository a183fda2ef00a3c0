"""``platform-models``: list registered model versions and approve pending candidates."""

from __future__ import annotations

import argparse
import json
import sys

from platform_core.registry import ModelRegistry, RegistryError
from platform_core.resources import storage_resource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform-models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="versions of a model, newest last")
    ls.add_argument("name", help="model name, e.g. beer_ibu")
    ap = sub.add_parser("approve", help="approve a pending candidate so it becomes champion")
    ap.add_argument("name")
    ap.add_argument("version", type=int)
    args = parser.parse_args(argv)

    with storage_resource().process_config_and_initialize_cm() as storage:
        registry = ModelRegistry(storage, args.name)
        try:
            if args.command == "list":
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
                            }
                        )
                    )
            else:
                mv = registry.approve(args.version)
                print(f"{mv.label} is now {mv.status}")
        except RegistryError as exc:
            print(f"platform-models: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
