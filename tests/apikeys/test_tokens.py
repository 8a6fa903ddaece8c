import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apikeys.tokens import (
    CHECKSUM_LENGTH,
    ENVIRONMENT_PREFIXES,
    checksum,
    display_hint,
    generate_token,
    parse_token,
    token_digest,
    token_hint,
)
from core.ids import BASE62

ENVIRONMENTS = ["production", "staging", "development"]
# Everything a mistyped character could become: base62, the separators and a few lookalikes.
ALPHABET = BASE62 + "_-.+/= lIO01é"


@pytest.mark.parametrize(
    ("environment", "prefix"),
    [("production", "gk_prod_"), ("staging", "gk_stg_"), ("development", "gk_dev_")],
)
def test_generate_token_has_spec_shape_and_parses(environment, prefix) -> None:
    token = generate_token(environment)
    assert token.startswith(prefix)
    assert re.fullmatch(prefix + r"[0-9A-Za-z]{36}", token)
    assert token[-CHECKSUM_LENGTH:] == checksum(token[:-CHECKSUM_LENGTH])
    parsed = parse_token(token)
    assert parsed is not None
    assert parsed.environment == environment


def test_generate_token_is_random() -> None:
    assert len({generate_token("production") for _ in range(200)}) == 200


def test_checksum_is_crc32_base62_left_padded() -> None:
    # zlib.crc32(b"") == 0 → six zeros; a known value checks the base62 digits and padding.
    assert checksum("") == "000000"
    import zlib

    body = "gk_prod_" + "a" * 30
    value, digits = zlib.crc32(body.encode()), []
    while value:
        value, r = divmod(value, 62)
        digits.append(BASE62[r])
    assert checksum(body) == "".join(reversed(digits)).rjust(6, "0")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "gk_prod_",
        "gk_live_" + "a" * 36,
        "GK_PROD_" + "a" * 36,
        "gk_prod_" + "a" * 35,
        "gk_prod_" + "a" * 37,
        " gk_prod_" + "a" * 36,
        "gk_prod_" + "a" * 10_000,
        "gat_" + "a" * 40,
    ],
)
def test_parse_token_rejects_bad_shapes(token) -> None:
    assert parse_token(token) is None


def _valid_token(environment: str, random_part: str) -> str:
    body = f"gk_{ENVIRONMENT_PREFIXES[environment]}_{random_part}"
    return body + checksum(body)


valid_tokens = st.builds(
    _valid_token,
    st.sampled_from(ENVIRONMENTS),
    st.text(alphabet=BASE62, min_size=30, max_size=30),
)


@given(valid_tokens)
def test_parse_token_accepts_every_well_formed_token(token) -> None:
    assert parse_token(token) is not None


@settings(max_examples=500)
@given(token=valid_tokens, data=st.data())
def test_parse_token_rejects_any_single_character_change(token, data) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(ALPHABET).filter(lambda c: c != token[position]), label="replacement"
    )
    changed = token[:position] + replacement + token[position + 1:]
    assert parse_token(changed) is None


@settings(max_examples=200)
@given(token=valid_tokens, data=st.data())
def test_parse_token_rejects_a_dropped_or_added_character(token, data) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    assert parse_token(token[:position] + token[position + 1:]) is None
    extra = data.draw(st.sampled_from(ALPHABET))
    assert parse_token(token[:position] + extra + token[position:]) is None


@given(st.text(max_size=80))
def test_parse_token_never_raises(text) -> None:
    parse_token(text)


def test_digest_is_keyed_and_hint_is_last_four(settings) -> None:
    token = generate_token("production")
    digest = token_digest(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest
    settings.GATEHOUSE_KEY_PEPPER = "another-pepper"
    assert token_digest(token) != digest
    assert token_hint(token) == token[-4:]
    assert display_hint("production", "abcd") == "gk_prod_…abcd"
