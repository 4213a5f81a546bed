"""Token Desk as it was at an earlier git revision, for a bench's `--baseline REV`.

REV is checked out with `git worktree add --detach` into a temporary directory, removed at the
end, also on failure (a bench killed outright leaves it behind: `git worktree prune` after
deleting the directory). REV's servers run as processes of their own, with that checkout as
their working directory and first on PYTHONPATH: the virtualenv has this tree's packages
installed in editable mode, whose finder Python consults only after PYTHONPATH, so they import
REV's `bot`, `storage` and `slack_standin`; `checked_out` verifies it before any bench starts.

They are seeded and served by REV's own code too, its schema being possibly older than this
tree's: REV's copy of the bench file, run with the entry points the bench documents. A
revision whose bench/ predates this module has no such entry points; this tree's bench file
and this module are then copied into REV's bench/ and run there, on REV's packages and REV's
bench/seed.py. That holds while this tree's bench still calls REV's API as it was (a mismatch
stops the run at start, with Python's own error) and is said in the bench's output.

Both sides of that split use the small process helpers below: the bench starts a server and
reads its one ready line, the server waits until it is told to stop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
START_SECONDS = 60.0  # the longest a server may take to seed and start
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Baseline:
    revision: str  # as given
    label: str  # the short commit
    root: Path  # REV's checkout
    own_entry_points: bool  # REV's bench files can seed and serve for a baseline

    def environment(self) -> dict[str, str]:
        paths = [str(self.root), *filter(None, [os.environ.get("PYTHONPATH")])]
        return os.environ | {"PYTHONPATH": os.pathsep.join(paths)}

    def script(self, bench: str) -> Path:
        """The file to run for REV's servers of `bench` (e.g. "list.py")."""
        directory = self.root / "bench"
        if not self.own_entry_points:
            directory.mkdir(exist_ok=True)
            for name in (bench, Path(__file__).name):
                shutil.copyfile(HERE / name, directory / name)
        return directory / bench

    @property
    def title(self) -> str:
        return self.label if self.revision == self.label else f"{self.revision} ({self.label})"

    def describe(self) -> str:
        served_by = (
            "its own bench file"
            if self.own_entry_points
            else "this tree's bench file, copied into it as REV's bench/ predates --baseline,"
            " on REV's packages and REV's bench/seed.py"
        )
        return f"baseline: {self.title}, seeded and served by {served_by}"


def git(*arguments: str) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"git {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@contextmanager
def checked_out(revision: str) -> Iterator[Baseline]:
    commit = git("rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="tokendesk-baseline-") as directory:
        root = Path(directory) / "tree"
        git("worktree", "add", "--detach", str(root), commit)
        try:
            baseline = Baseline(
                revision=revision,
                label=git("rev-parse", "--short", commit),
                root=root,
                own_entry_points=(root / "bench" / Path(__file__).name).exists(),
            )
            check_imports(baseline)
            yield baseline
        finally:
            # --force: the runs leave caches (and perhaps copied bench files) in the checkout.
            git("worktree", "remove", "--force", str(root))


def check_imports(baseline: Baseline) -> None:
    """REV's processes must import REV's packages. `-P` puts nothing in front of PYTHONPATH,
    as for a script in REV's bench/, a directory that holds no package."""
    probe = "import bot, storage; print(bot.__file__); print(storage.__file__)"
    result = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        cwd=baseline.root,
        env=baseline.environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    files = [Path(line) for line in result.stdout.splitlines()]
    if result.returncode != 0 or not all(file.is_relative_to(baseline.root) for file in files):
        raise SystemExit(
            f"the baseline's processes do not import {baseline.label}'s packages:"
            f" {result.stdout.strip() or result.stderr.strip()}"
        )


# The bench's side ----------------------------------------------------------------------------


async def start_child(
    script: Path, arguments: Sequence[str], baseline: Baseline | None
) -> asyncio.subprocess.Process:
    """`script` with `arguments` under this interpreter: of this tree, or of `baseline`.
    Its standard input stays open: the child stops when it closes (see `wait_until_stopped`)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=baseline.root if baseline else None,
        env=baseline.environment() if baseline else None,
    )


async def first_line(process: asyncio.subprocess.Process, name: str) -> str:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_SECONDS)
    except TimeoutError:
        raise SystemExit(f"the {name} server did not start in {START_SECONDS:.0f} s") from None
    return line.decode().strip()


async def stop_child(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()


# The server's side ---------------------------------------------------------------------------


async def wait_until_stopped() -> None:
    """Until SIGTERM, SIGINT or the end of standard input (the bench process gone)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    def watch_stdin() -> None:
        while os.read(0, 4096):  # unbuffered: no lock left held at interpreter exit
            pass
        loop.call_soon_threadsafe(stopping.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    await stopping.wait()
