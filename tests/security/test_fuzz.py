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

import base64
import json
import string
from http import HTTPStatus
from urllib.parse import quote

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


# --- the public OAuth endpoints and the leak report, with hostile bodies (issue 13, point 8) ----
#
# Registration, token, revocation, introspection and the leak report take input from anyone.
# Whatever the body — JSON nested past the parser's depth, lone surrogates (as JSON escapes and
# as CESU-8 bytes), NUL bytes, credential-shaped strings of every family, huge values, wrong
# types — the answer is never a 5xx (the test client re-raises any exception), and every error is
# JSON naming an `error`. Nothing needs to be set up: none of these requires a known client.

CREDENTIAL_SHAPED = st.one_of(
    api_keys,
    access_tokens,
    refresh_tokens,
    st.builds(oauth_tokens.generate_authorization_code),
    st.builds(lambda: oauth_tokens.ClientSecretGenerator().hash()),
    st.sampled_from(["gk_live_", "gat_", "grt_", "gac_", "gcs_"]).map(lambda p: p + "A" * 46),
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=80),  # any code point, lone surrogates included
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=4),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff", "%00", "\u2028", "\ufeff",
                     "' OR 1=1 --", "../../etc/passwd", "http://127.0.0.1:1/", "javascript:x"]),
    CREDENTIAL_SHAPED,
    CREDENTIAL_SHAPED.map(lambda token: f"https://app.example/cb?leak={token}"),
    st.integers(min_value=1_000, max_value=40_000).map(lambda n: "A" * n),
)
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                | HOSTILE_TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children,
                                                                      max_size=4),
    max_leaves=12,
)
REGISTRATION_MEMBERS = ["client_name", "redirect_uris", "grant_types", "response_types",
                        "token_endpoint_auth_method", "scope", "client_uri", "logo_uri"]
LEAK_MEMBERS = ["credentials", "credential", "url", "source", "description"]


def deep_json(depth: int, opener: str) -> bytes:
    return (opener * depth).encode()


def json_dumps(value: object) -> bytes:
    # `surrogatepass` writes a lone surrogate as its CESU-8 bytes: invalid UTF-8 on the wire.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def documents(members: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects with the endpoint's own member names given hostile or wrongly typed values,
    written either as `\\uXXXX` escapes or as raw (possibly invalid) UTF-8."""
    objects = st.dictionaries(st.sampled_from(members) | HOSTILE_TEXT, JSON_VALUES, max_size=6)
    return st.one_of(
        objects.map(lambda value: json.dumps(value).encode()),
        objects.map(json_dumps),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.integers(min_value=2_000, max_value=20_000).map(lambda n: deep_json(n, "[")),
        st.integers(min_value=2_000, max_value=5_000).map(lambda n: deep_json(n, '{"a":')),
        st.binary(max_size=600),
    )


def form_value(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


OAUTH_FORM_FIELDS = ["grant_type", "code", "redirect_uri", "code_verifier", "client_id",
                     "client_secret", "refresh_token", "scope", "resource", "token",
                     "token_type_hint"]
form_bodies = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(OAUTH_FORM_FIELDS) | HOSTILE_TEXT,
                  st.sampled_from(["authorization_code", "refresh_token", "client_credentials",
                                   "password", "access_token"]) | HOSTILE_TEXT),
        max_size=8,
    ).map(lambda pairs: "&".join(f"{form_value(k)}={form_value(v)}" for k, v in pairs).encode()),
    st.binary(max_size=600),
    documents(OAUTH_FORM_FIELDS),
)
basic_credentials = st.one_of(
    st.none(),
    st.tuples(HOSTILE_TEXT, HOSTILE_TEXT).map(
        lambda pair: "Basic " + base64.b64encode(
            f"{pair[0]}:{pair[1]}".encode("utf-8", "surrogatepass")).decode()),
    HOSTILE_TEXT.map(lambda text: "Basic " + text.encode("utf-8", "replace").decode("latin-1")),
    CREDENTIAL_SHAPED.map(lambda token: f"Bearer {token}"),
)
content_types = st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                 "application/x-www-form-urlencoded; charset=latin-1",
                                 "application/json; charset=utf-16", "text/plain", "",
                                 "multipart/form-data; boundary=x"])

# path → the statuses a hostile request may get besides a 4xx (a 2xx that is not an error).
PUBLIC_ENDPOINTS = {
    "/api/oauth/register": {HTTPStatus.CREATED},
    "/api/oauth/token": set(),
    "/api/oauth/revoke": {HTTPStatus.OK},  # RFC 7009 §2.2: unknown tokens are "revoked" too
    "/api/oauth/introspect": {HTTPStatus.OK},  # {"active": false}
    "/api/v1/leaked-credentials": {HTTPStatus.ACCEPTED},
}


def assert_json_answer(path: str, response) -> None:
    status = response.status_code
    assert status < HTTPStatus.INTERNAL_SERVER_ERROR, (path, status, response.content[:300])
    if status < HTTPStatus.BAD_REQUEST:
        assert status in PUBLIC_ENDPOINTS[path], (path, status, response.content[:300])
        return
    assert response["Content-Type"].startswith("application/json"), (
        path, status, response["Content-Type"], response.content[:300])
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (
        path, status, body)


def post(path: str, body: bytes, content_type: str, authorization: str | None):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return Client().generic("POST", path, body, content_type=content_type,
                            REMOTE_ADDR="192.0.2.7", **extra)


@pytest.mark.django_db
@PROPERTY
@given(body=documents(REGISTRATION_MEMBERS), content_type=content_types)
@example(body=deep_json(15_000, "["), content_type="application/json")
@example(body=b"--x\r\n" + b"A" * 9000, content_type="multipart/form-data; boundary=x")
@example(body=b'{"client_name": "\\ud800", "redirect_uris": ["https://a.example/cb"]}',
         content_type="application/json")
@example(body=b'{"client_name": "a\\u0000b", "redirect_uris": ["https://a.example/cb"]}',
         content_type="application/json")
@example(body=json.dumps({"client_name": "gat_" + "A" * 46,
                          "redirect_uris": ["https://a.example/cb?t=grt_" + "B" * 46]}).encode(),
         content_type="application/json")
def test_any_registration_body_is_a_json_answer(body: bytes, content_type: str, settings) -> None:
    settings.RATELIMIT_ENABLE = False  # the per-IP limit is tested on its own
    response = post("/api/oauth/register", body, content_type, None)
    assert_json_answer("/api/oauth/register", response)
    if response.status_code == HTTPStatus.CREATED:
        assert response.json()["client_id"]


@pytest.mark.django_db
@PROPERTY
@given(path=st.sampled_from(["/api/oauth/token", "/api/oauth/revoke", "/api/oauth/introspect"]),
       body=form_bodies, content_type=content_types, authorization=basic_credentials)
@example(path="/api/oauth/token", body=b"grant_type=authorization_code&code=%ED%A0%80",
         content_type="application/x-www-form-urlencoded", authorization=None)
@example(path="/api/oauth/revoke", body=b"token=gat_%00&client_id=x",
         content_type="application/x-www-form-urlencoded", authorization=None)
@example(path="/api/oauth/introspect", body=deep_json(15_000, "["),
         content_type="application/json", authorization="Basic Og==")
def test_any_token_endpoint_request_is_a_json_answer(path: str, body: bytes, content_type: str,
                                                    authorization: str | None,
                                                    settings) -> None:
    settings.RATELIMIT_ENABLE = False
    assert_json_answer(path, post(path, body, content_type, authorization))


@pytest.mark.django_db
@PROPERTY
@given(body=documents(LEAK_MEMBERS), content_type=content_types)
@example(body=json.dumps({"credentials": ["gk_dev_" + "A" * 40, "\ud800"]},
                         ensure_ascii=True).encode(), content_type="application/json")
def test_any_hostile_leak_report_is_a_json_answer(body: bytes, content_type: str,
                                                 settings) -> None:
    settings.RATELIMIT_ENABLE = False
    assert_json_answer("/api/v1/leaked-credentials",
                       post("/api/v1/leaked-credentials", body, content_type, None))
