"""Runs Token Desk: opens the store, serves HTTP on PORT, and shuts down cleanly on a signal."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from bot.settings import Settings
from storage.credentials import load_or_create_key
from storage.errors import StartupRefused
from storage.store import Store

logger = logging.getLogger(__name__)
STORE_KEY = web.AppKey("store", Store)


async def open_store(settings: Settings) -> Store:
    configured = settings.tokendesk_secret_key
    key = load_or_create_key(
        settings.tokendesk_db, configured.get_secret_value() if configured else None
    )
    return await Store.open(
        path=settings.tokendesk_db,
        secret_key=key,
        api_versions=settings.tokendesk_api_versions,
        scopes=settings.tokendesk_scopes,
        admins=settings.tokendesk_admins,
    )


async def healthz(request: web.Request) -> web.Response:
    healthy = await request.app[STORE_KEY].is_healthy()
    return web.json_response(
        {"ok": healthy}, status=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )


def create_web_app(store: Store) -> web.Application:
    app = web.Application()
    app[STORE_KEY] = store
    app.router.add_get("/healthz", healthz)
    return app


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT; StartupRefused when configuration or data forbid it."""
    store = await open_store(settings)
    runner = web.AppRunner(create_web_app(store), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, port=settings.port)
        try:
            await site.start()
        except OSError as error:
            raise StartupRefused("PORT", f"cannot be listened on ({error.strerror})") from None
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        logger.info("Token Desk listening on port %d", settings.port)
        await stopping.wait()
        logger.info("shutting down")
    finally:
        await runner.cleanup()
        await store.close()
