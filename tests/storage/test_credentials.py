from __future__ import annotations

import hashlib
import hmac
import re
import string
import zlib

from hypothesis import given
from hypothesis import strategies as st

from storage.credentials import (
    SecretHasher,
    checksum,
    contains_secret,
    generate_secret,
    is_valid_secret,
    parse_key,
    secret_hint,
    secret_shaped,
)
from storage.errors import StartupRefused

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
random_parts = st.text(alphabet=BASE62, min_size=32, max_size=32)


def reference_checksum(random_part: str) -> str:
    """The checksum rule written out independently: `zlib.crc32` of the 32 random
    characters' ASCII bytes, in base62 (`0-9A-Za-z`), left-padded to 6 with `0`."""
    value = zlib.crc32(random_part.encode("ascii"))
    digits = ""
    while value:
        digits = BASE62[value % 62] + digits
        value //= 62
    return digits.rjust(6, "0")


def test_a_secret_has_the_specified_shape() -> None:
    secrets = {generate_secret() for _ in range(200)}
    assert len(secrets) == 200
    for secret in secrets:
        assert re.fullmatch(r"tdk_[0-9A-Za-z]{38}", secret)
        assert secret[-6:] == reference_checksum(secret[4:36])
        assert is_valid_secret(secret)


@given(random_parts)
def test_checksum_matches_the_specification(random_part: str) -> None:
    assert checksum(random_part) == reference_checksum(random_part)
    assert is_valid_secret("tdk_" + random_part + checksum(random_part))


@given(random_parts, st.integers(min_value=0, max_value=37), st.sampled_from(BASE62))
def test_any_single_character_change_is_caught(
    random_part: str, position: int, replacement: str
) -> None:
    secret = "tdk_" + random_part + checksum(random_part)
    index = 4 + position
    changed = secret[:index] + replacement + secret[index + 1 :]
    assert is_valid_secret(changed) == (changed == secret)


def test_malformed_secrets_are_refused() -> None:
    secret = generate_secret()
    for bad in ("", secret[:-1], secret + "0", "TDK_" + secret[4:], " " + secret, secret[4:]):
        assert not is_valid_secret(bad)


def test_contains_secret_finds_one_inside_text() -> None:
    secret = generate_secret()
    assert contains_secret(f"token={secret};")
    assert contains_secret(f"tdk_tdk_{secret[4:]}")
    assert not contains_secret("tdk_" + "0" * 38)
    assert secret_shaped("x tdk_" + "0" * 38 + " y") == "tdk_" + "0" * 38
    assert secret_shaped("tdk_short") is None


def test_the_hint_is_the_last_four_characters() -> None:
    secret = generate_secret()
    assert secret_hint(secret) == secret[-4:]


def test_the_hash_is_keyed() -> None:
    secret = generate_secret()
    first, second = SecretHasher(b"a" * 32), SecretHasher(b"b" * 32)
    assert first.digest(secret) != second.digest(secret)
    assert first.digest(secret) == SecretHasher(b"a" * 32).digest(secret)
    assert first.key_check_value() != second.key_check_value()


@given(
    st.binary(min_size=32, max_size=200),
    st.text(alphabet=BASE62, min_size=0, max_size=80),
)
def test_the_hash_is_hmac_sha256_under_the_key(key: bytes, secret: str) -> None:
    """Keys shorter than, as long as, and longer than SHA-256's 64-byte block."""
    expected = hmac.new(key, secret.encode("ascii"), hashlib.sha256).digest()
    hasher = SecretHasher(key)
    assert hasher.digest(secret) == expected
    assert hasher.digest(secret) == expected  # the keyed states are copied, never used up


@given(
    st.one_of(
        st.text(min_size=42, max_size=42),
        # Near misses: non-ASCII letters and digits (`str.isalnum` accepts them), and `_`.
        st.text(alphabet=BASE62 + "_-ßé٣ⅷ ", min_size=38, max_size=38).map("tdk_".__add__),
        random_parts.map(lambda part: "tdk_" + part + checksum(part)),
    )
)
def test_only_the_exact_shape_is_a_secret(candidate: str) -> None:
    shaped = re.fullmatch(r"tdk_[0-9A-Za-z]{38}", candidate) is not None
    good_checksum = shaped and candidate[-6:] == reference_checksum(candidate[4:36])
    assert is_valid_secret(candidate) == good_checksum


def test_keys_are_hex_or_base64_of_at_least_32_bytes() -> None:
    assert parse_key("00" * 32) == bytes(32)
    assert parse_key("QUFB" * 11) == b"AAA" * 11
    for bad in ("00" * 31, "QUFB" * 10, "not a key at all", ""):
        try:
            parse_key(bad)
        except StartupRefused as refused:
            assert refused.subject == "TOKENDESK_SECRET_KEY"
            assert bad not in str(refused) or not bad
        else:
            raise AssertionError("a short key was accepted")
