"""docker/: the compose file's services and the example settings, read once for the tests."""

import re

import yaml

from tests.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
#: ``${VAR}``, ``${VAR:-default}``, ``${VAR?err}`` but not ``$${VAR}`` (escaped for the shell).
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")


def env_example() -> dict[str, str]:
    """docker/.env.example as NAME -> value (comments and blank lines skipped)."""
    pairs = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"docker/.env.example: not NAME=value: {line!r}")
            pairs[name.strip()] = value.strip()
    return pairs
