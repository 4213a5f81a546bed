"""`python -m playground` (and `tokendesk playground`): the playground on 127.0.0.1:PORT
(3000 unless PORT says otherwise), its URL printed first."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping

from bot.logs import configure_logging
from playground.server import DEFAULT_PORT, run
from storage.errors import StartupRefused

EXIT_CONFIGURATION = 2


def port_of(environment: Mapping[str, str]) -> int:
    """PORT, or 3000 when it is unset or empty; StartupRefused when it is no port number."""
    text = environment.get("PORT", "").strip()
    if not text:
        return DEFAULT_PORT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise StartupRefused("PORT", "must be a port number between 1 and 65535")
    return int(text)


def main() -> None:
    try:
        port = port_of(os.environ)
        configure_logging("INFO")
        # Every call to the stand-in and every page poll would be an access line, burying
        # what the app itself says.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        asyncio.run(run(port))
    except StartupRefused as error:
        print(f"tokendesk playground: cannot start: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIGURATION)


if __name__ == "__main__":
    main()
