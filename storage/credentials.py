"""Token Desk secrets, and the server key that hashes them at rest.

A secret is `tdk_` + 32 CSPRNG base62 characters + a 6-character base62 CRC-32 of those 32
characters. The checksum lets anyone reject a mistyped or made-up secret offline, before a
look-up; it adds no strength. At rest only HMAC-SHA256(server key, secret) is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import os
import re
import secrets
import stat
import string
import zlib
from collections.abc import Callable
from pathlib import Path

from storage.errors import StartupRefused

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIX = "tdk_"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
SECRET_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
HINT_LENGTH = 4
MIN_KEY_BYTES = 32

_SECRET_SHAPE = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}")
_KEY_CHECK_LABEL = b"tokendesk key check v1"
_HMAC_BLOCK = 64  # SHA-256's block size, in bytes


def _sha256_for_short_messages() -> Callable[[bytes], hashlib._Hash]:
    """CPython's own SHA-256 (hashlib's fallback when OpenSSL has none: `_sha2` from Python
    3.12, `_sha256` before), else OpenSSL's. An auth check copies and finishes two keyed
    states over a few dozen bytes, which CPython's does in a third less time than OpenSSL's
    EVP calls, and with less of the cache that the rest of the request needs."""
    for module in ("_sha2", "_sha256"):
        try:
            constructor: Callable[[bytes], hashlib._Hash] = importlib.import_module(module).sha256
            return constructor
        except ImportError:
            continue
    return hashlib.sha256


_SHA256 = _sha256_for_short_messages()
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


def checksum(random_part: str) -> str:
    """The CRC-32 of `random_part` in base62, left-padded with `0` to 6 digits (62**6 >
    2**32). Unrolled: every auth check computes one."""
    number = zlib.crc32(random_part.encode("ascii"))
    number, sixth = divmod(number, 62)
    number, fifth = divmod(number, 62)
    number, fourth = divmod(number, 62)
    number, third = divmod(number, 62)
    first, second = divmod(number, 62)
    digits = ALPHABET
    return (
        digits[first]
        + digits[second]
        + digits[third]
        + digits[fourth]
        + digits[fifth]
        + digits[sixth]
    )


def generate_secret() -> str:
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + checksum(random_part)


def is_valid_secret(candidate: str) -> bool:
    """The exact shape and a matching checksum: what may go on to a look-up."""
    if len(candidate) != SECRET_LENGTH or not candidate.startswith(PREFIX):
        return False
    body = candidate[len(PREFIX) :]
    # `_SECRET_SHAPE`, at a fraction of a regular expression's cost: ASCII letters and
    # digits are exactly base62's alphabet.
    if not (body.isascii() and body.isalnum()):
        return False
    return hmac.compare_digest(checksum(body[:RANDOM_LENGTH]), body[RANDOM_LENGTH:])


def contains_secret(text: str) -> bool:
    """Whether `text` holds a Token Desk secret anywhere in it (a `tdk_` run with a valid
    checksum), so that a pasted secret is never stored in a name or a description."""
    return any(is_valid_secret(match.group()) for match in _SECRET_SHAPE.finditer(text))


_SECRET_PART = re.compile(rf"{PREFIX}[0-9A-Za-z]{{4,}}")


def has_secret_part(text: str) -> bool:
    """Whether `text` holds what may be a secret or a piece of one (cut by a length limit):
    never to be shown back, even in part."""
    return _SECRET_PART.search(text) is not None


def mask_secret_parts(text: str) -> str:
    """`text` with every run that may be a secret or a piece of one replaced by `tdk_…`."""
    return _SECRET_PART.sub(PREFIX + "…", text)


def secret_shaped(text: str) -> str | None:
    """The first secret-shaped run in `text`, checksum or not: never to be echoed."""
    match = _SECRET_SHAPE.search(text)
    return match.group() if match else None


def secret_hint(secret: str) -> str:
    return secret[-HINT_LENGTH:]


class SecretHasher:
    """HMAC-SHA256 under the server key; the only form in which a secret is kept."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise StartupRefused("TOKENDESK_SECRET_KEY", "must be at least 32 bytes")
        self._key = key
        # HMAC (RFC 2104) is SHA-256 over the key padded and XORed with one constant, then
        # the message; and SHA-256 over the key XORed with another, then that digest. Both
        # keyed states are hashed once here, and a digest copies them: `hmac.new` would key
        # SHA-256 again on every auth check, at twice the cost.
        block = key if len(key) <= _HMAC_BLOCK else hashlib.sha256(key).digest()
        block = block.ljust(_HMAC_BLOCK, b"\0")
        self._inner = _SHA256(block.translate(_INNER_PAD))
        self._outer = _SHA256(block.translate(_OUTER_PAD))

    def digest(self, secret: str) -> bytes:
        """HMAC-SHA256(server key, secret)."""
        inner = self._inner.copy()
        inner.update(secret.encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def key_check_value(self) -> str:
        """A short public fingerprint of the key, stored with the database and printed with
        backups, so that a database is never opened with the wrong key."""
        return hmac.new(self._key, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:16]


def key_file_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".key")


def parse_key(text: str) -> bytes:
    """A configured key: hex or base64 of at least 32 bytes. Errors never repeat the value."""
    text = text.strip()
    key: bytes | None = None
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) < MIN_KEY_BYTES:
        raise StartupRefused(
            "TOKENDESK_SECRET_KEY", "must be at least 32 bytes, written as hex or base64"
        )
    return key


def load_or_create_key(db_path: Path, configured: str | None) -> bytes:
    """The configured key, else the key file beside the database, created once if absent."""
    if configured is not None:
        return parse_key(configured)
    key_path = key_file_for(db_path)
    try:
        return _read_key_file(key_path)
    except FileNotFoundError:
        pass
    _create_key_file(key_path)
    return _read_key_file(key_path)


def _read_key_file(key_path: Path) -> bytes:
    with open(key_path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise StartupRefused(
                f"key file {key_path.name}", "must be readable by its owner only (chmod 600)"
            )
        content = handle.read().decode("ascii", errors="replace")
    try:
        return parse_key(content)
    except StartupRefused:
        raise StartupRefused(
            f"key file {key_path.name}", "must hold at least 32 bytes as hex or base64"
        ) from None


def _create_key_file(key_path: Path) -> None:
    """Write the key to a private temporary file, then link it into place: the key file
    either does not exist or is complete, and a concurrent creator's key is never replaced."""
    temporary = key_path.with_name(f".{key_path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_hex(MIN_KEY_BYTES).encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, key_path)
        except FileExistsError:
            pass
        _fsync_directory(key_path.parent)
    finally:
        os.unlink(temporary)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
