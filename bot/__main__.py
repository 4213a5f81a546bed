"""`python -m bot` and the `tokendesk` console script: the app, or an operator command."""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

from pydantic import ValidationError

from bot import operator
from bot.logs import configure_logging
from bot.settings import Settings, describe
from storage.errors import StartupRefused

EXIT_CONFIGURATION = 2


def refuse(reason: str) -> NoReturn:
    print(f"tokendesk: cannot start: {reason}", file=sys.stderr)
    sys.exit(EXIT_CONFIGURATION)


def main() -> None:
    if sys.argv[1:]:
        sys.exit(operator.run(sys.argv[1:]))
    try:
        settings = Settings()
    except ValidationError as error:
        refuse(describe(error))
    configure_logging(settings.tokendesk_log_level, log_format=settings.tokendesk_log_format)
    # Imported here: Bolt and the server are for the app, not for the operator commands.
    from bot.server import serve

    try:
        asyncio.run(serve(settings))
    except StartupRefused as error:
        refuse(str(error))


if __name__ == "__main__":
    main()
