"""Property tests (hypothesis): the token parsers and the `Authorization` header handling.

- The parsers (`apikeys.tokens.parse_token`, `oauth.tokens.is_well_formed`) never raise, accept
  exactly what the generators make, and refuse any single-character change of a real token
  (CRC32 catches every change of up to 32 consecutive bits).
- Any header value — arbitrary bytes as a WSGI server hands them over (latin-1), schemes, real
  tokens mutated, several credentials — sent through the real middleware stack answers a JSON
  4xx, never a 5xx or an exception; and a good token still answers 200 afterwards.
- The public leak-report endpoint answers any body with a JSON 202, 400, 413 or 415.

The example counts are in docs/security.md; `EXAMPLES` sets them.
"""

from __future__ import annotations

import json
import string
from http import HTTPStatus

import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apikeys.tokens import generate_token, parse_token
from oauth import tokens as oauth_tokens

EXAMPLES = 500
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
BASE62 = string.digits + string.ascii_letters
ENVIRONMENTS = ["production", "staging", "development"]

api_keys = st.sampled_from(ENVIRONMENTS).map(generate_token)
access_tokens = st.builds(oauth_tokens.generate_access_token)
refresh_tokens = st.builds(oauth_tokens.generate_refresh_token)
texts = st.one_of(
    st.text(),
    st.text(alphabet=BASE62 + "_", min_size=30, max_size=60).map(lambda t: "gk_dev_" + t),
    st.text(alphabet=BASE62, min_size=40, max_size=52).map(lambda t: "gat_" + t),
)


def mutate(token: str, position: int, replacement: str) -> str:
    position %= len(token)
    if token[position] == replacement:
        replacement = "0" if replacement != "0" else "1"
    return token[:position] + replacement + token[position + 1:]


# --- parsers -----------------------------------------------------------------------------------

@PROPERTY
@given(texts)
def test_parse_token_never_raises_and_accepts_only_good_shapes(value: str) -> None:
    parsed = parse_token(value)
    if parsed is not None:
        assert parsed.token == value
        assert parse_token(value[:-1] + ("A" if value[-1] != "A" else "B")) is None


@PROPERTY
@given(api_keys)
def test_every_generated_key_parses(token: str) -> None:
    parsed = parse_token(token)
    assert parsed is not None and parsed.environment in ENVIRONMENTS


@PROPERTY
@given(api_keys, st.integers(min_value=0), st.sampled_from(BASE62 + "_-"))
def test_any_one_character_change_of_a_key_is_refused(token: str, position: int,
                                                      replacement: str) -> None:
    assert parse_token(mutate(token, position, replacement)) is None


@PROPERTY
@given(st.one_of(access_tokens, refresh_tokens), st.integers(min_value=0),
       st.sampled_from(BASE62 + "_"))
def test_any_one_character_change_of_an_oauth_token_is_refused(token: str, position: int,
                                                               replacement: str) -> None:
    prefix = token[:4]
    assert oauth_tokens.is_well_formed(token, prefix)
    assert not oauth_tokens.is_well_formed(mutate(token, position, replacement), prefix)


@PROPERTY
@given(texts, st.sampled_from(["gat_", "grt_", "", "gk_"]))
def test_is_well_formed_never_raises(value: str, prefix: str) -> None:
    assert oauth_tokens.is_well_formed(value, prefix) in (True, False)


# --- the Authorization header through the real middleware ------------------------------------

headers = st.one_of(
    st.binary(max_size=700).map(lambda raw: raw.decode("latin-1")),
    st.text(max_size=200),
    st.tuples(
        st.sampled_from(["Bearer", "bearer", "BEARER", "ApiKey", "apikey", "Basic", "Token",
                         "Bearer  ", "", " "]),
        st.one_of(api_keys, access_tokens, refresh_tokens, texts),
        st.integers(min_value=0), st.sampled_from(BASE62 + " ,=\x00\t\r\xff"),
        st.booleans(),
    ).map(lambda t: f"{t[0]} {mutate(t[1], t[2], t[3]) if t[1] and t[4] else t[1]}"),
    st.lists(st.one_of(api_keys, access_tokens), min_size=2, max_size=3).map(
        lambda tokens: ", ".join(f"Bearer {t}" for t in tokens)),
)


@pytest.mark.django_db
@PROPERTY
@given(value=headers)
@example(value="Bearer " + "A" * 8192)
@example(value="Bearer gk_dev_" + "\x00" * 36)
@example(value="ApiKey \udcff")
def test_any_authorization_header_is_a_json_4xx(value: str, make_key) -> None:
    # A fresh client each time; the test client re-raises any exception a view or middleware
    # raised, so an unhandled error fails here even if Django would have rendered a 500.
    client = Client(HTTP_AUTHORIZATION=value)
    response = client.get("/api/v1/me", REMOTE_ADDR="192.0.2.1")
    assert HTTPStatus.BAD_REQUEST <= response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert body["error"] and body["message"]


@pytest.mark.django_db
def test_a_good_key_still_works_after_the_fuzzing(make_key, api) -> None:
    _key, token = make_key()
    assert api(token).get("/api/v1/me").status_code == HTTPStatus.OK


# --- the public leak-report endpoint ----------------------------------------------------------

bodies = st.one_of(
    st.binary(max_size=2000),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children,
                                                                          max_size=5),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    st.lists(st.one_of(api_keys, access_tokens, refresh_tokens, st.text()), max_size=20).map(
        lambda items: json.dumps({"credentials": items, "url": "https://x.example"}).encode()),
)


@pytest.mark.django_db
@PROPERTY
@given(body=bodies, content_type=st.sampled_from(
    ["application/json", "application/json; charset=latin-1", "text/plain", ""]))
def test_any_leak_report_is_a_json_answer(body: bytes, content_type: str, settings) -> None:
    settings.RATELIMIT_ENABLE = False  # the per-IP limit is tested on its own
    response = Client().generic("POST", "/api/v1/leaked-credentials", body,
                                content_type=content_type)
    assert response.status_code in {202, 400, 413, 415}, response.content
    assert response["Content-Type"] == "application/json"
