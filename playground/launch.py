"""`make run`: the playground on a machine with no deployment configured, else the app.

A deployment variable is any `SLACK_*` one, `TOKENDESK_DB`, `TOKENDESK_DATABASE_URL` or
`TOKENDESK_SECRET_KEY`, in the environment or in `.env` in the working directory, read as the
app's settings read them: names in any case, empty values ignored. With none of them set the
playground starts. With any of them set the app starts exactly as `python -m bot` starts it,
refusing as it does when the configuration is incomplete: a half-configured production host
never falls back to demo data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values

DEPLOYMENT_PREFIX = "SLACK_"
DEPLOYMENT_NAMES = frozenset({"TOKENDESK_DB", "TOKENDESK_DATABASE_URL", "TOKENDESK_SECRET_KEY"})


def deployment_variables(
    environment: Mapping[str, str], env_file: Path = Path(".env")
) -> list[str]:
    """The deployment variables set (upper-cased, sorted), in `environment` or `env_file`."""
    found = _set_names(environment.items())
    if env_file.is_file():
        found |= _set_names(dotenv_values(env_file).items())
    return sorted(found)


def _set_names(items: Iterable[tuple[str, str | None]]) -> set[str]:
    return {
        name.upper()
        for name, value in items
        if value
        and (name.upper().startswith(DEPLOYMENT_PREFIX) or name.upper() in DEPLOYMENT_NAMES)
    }


def main() -> None:
    if deployment_variables(os.environ):
        # Imported only on this path: each side loads what it runs, nothing more.
        from bot.__main__ import main as run_app

        run_app()
    else:
        from playground.__main__ import main as run_playground

        run_playground()


if __name__ == "__main__":
    main()
