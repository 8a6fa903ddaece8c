"""Client ID Metadata Documents (SPEC §7, issue 19 point 4): an https `client_id` is fetched from a
real HTTPS server on loopback (a threaded `http.server` with its own certificate authority, which
only the test settings trust), validated, shown on the consent screen with its host, and used for
the full code + PKCE + token flow; each way a document can be unusable ends on Gatehouse's error
page with its reason."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import anyio
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import Client
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from oauth2_provider.models import AccessToken, Application
from pydantic import AnyUrl

from audit.models import AuditEvent
from oauth.models import Connection
from oauth.selectors import Registration, registration_kind

from .conftest import AUTHORIZE, RegisteredApp, authorize_params, pkce_pair, query_of
from .test_live_clients import MemoryTokenStorage, UserAgent

LOOPBACK_CALLBACK = "http://127.0.0.1:33418/callback"
HTTPS_CALLBACK = "https://assistant.example/callback"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificates(directory) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Gatehouse test CA")).issuer_name(_name("Gatehouse test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tuple(str(p) for p in paths)


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


class DocumentServer:
    """HTTPS on 127.0.0.1, answering each path with its `Route`; counts requests per path."""

    def __init__(self, cert: str, key: str) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                route = routes.get(self.path, Route(status=404, body=b"{}"))
                if route.delay:
                    time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def publish(self, path: str, document: dict | None = None, **route: object) -> str:
        """Serve `document` (default: a valid one naming its own URL) at `path`; its URL."""
        url = self.url(path)
        if document is None:
            document = {
                "client_id": url,
                "client_name": "Desk Assistant",
                "redirect_uris": [HTTPS_CALLBACK],
                "token_endpoint_auth_method": "none",
            }
        self.routes[path] = Route(body=json.dumps(document).encode(), **route)
        return url

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> tuple[str, str, str]:
    return _certificates(tmp_path_factory.mktemp("cimd-tls"))


@pytest.fixture
def documents(certificates, settings) -> Iterator[DocumentServer]:
    ca, cert, key = certificates
    settings.GATEHOUSE_CIMD_ALLOW_LOOPBACK = True
    settings.GATEHOUSE_CIMD_CA_FILE = ca
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "CIMD_FETCH_TIMEOUT_SECONDS": 1}
    server = DocumentServer(cert, key)
    yield server
    server.close()


@pytest.fixture
def editor(client_for) -> Client:
    return client_for("editor")


def _get_authorize(client: Client, client_id: str, redirect_uri: str = HTTPS_CALLBACK):
    verifier, challenge = pkce_pair()
    app = RegisteredApp(SimpleNamespace(client_id=client_id), None, redirect_uri)
    params = authorize_params(app, challenge, client_id=client_id)
    return client.get(AUTHORIZE, params), verifier


def test_metadata_flag_in_authorization_server_metadata(db) -> None:
    body = Client().get("/.well-known/oauth-authorization-server").json()
    assert body["client_id_metadata_document_supported"] is True
    assert body["registration_endpoint"].endswith("/api/oauth/register")  # DCR stays


def test_full_flow_with_a_metadata_document(documents, editor, authorize, exchange) -> None:
    client_id = documents.publish("/clients/desk.json", headers={
        "Content-Type": "application/json", "Cache-Control": "max-age=3600",
    })
    page, _ = _get_authorize(editor, client_id)
    assert page.status_code == HTTPStatus.OK, page.content[:800]
    html = page.content.decode()
    assert 'data-testid="metadata-document-warning"' in html
    assert f'data-testid="client-host">127.0.0.1:{documents.port}</code>' in html
    assert "Desk Assistant" in html
    assert 'data-testid="loopback-warning"' not in html

    application = Application.objects.get(client_id=client_id)
    assert application.registration_source == "cimd"
    assert application.client_type == Application.CLIENT_PUBLIC
    assert registration_kind(application) == Registration.METADATA_DOCUMENT
    # Cached for the document's max-age (within DOT's [5 min, 1 day] clamp).
    lifetime = (application.cimd_expires_at - application.updated).total_seconds()
    assert 3590 < lifetime < 3610

    app = RegisteredApp(application, None, HTTPS_CALLBACK)
    authorized = authorize(editor, app)
    response = exchange(app, authorized)
    assert response.status_code == HTTPStatus.OK, response.content
    token = response.json()["access_token"]
    assert token.startswith("gat_")
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == HTTPStatus.OK, me.content
    # The same consent path as any app: a Connection in the chosen workspace owns the token.
    connection = Connection.objects.get(application=application)
    assert connection.workspace.slug == "acme"
    assert AccessToken.objects.filter(application=application).count() == 1
    created = AuditEvent.objects.get(action="oauth_app.created", target_id=client_id)
    assert created.metadata["registration"] == "metadata_document"
    assert created.workspace is None
    # Cached: the whole flow fetched the document once.
    assert documents.hits["/clients/desk.json"] == 1


def test_consent_warns_when_every_redirect_is_localhost(documents, editor) -> None:
    url = documents.url("/clients/local.json")
    documents.publish("/clients/local.json", {
        "client_id": url, "client_name": "Local Tool", "redirect_uris": [LOOPBACK_CALLBACK],
    })
    page, _ = _get_authorize(editor, url, LOOPBACK_CALLBACK)
    assert page.status_code == HTTPStatus.OK, page.content[:800]
    assert 'data-testid="loopback-warning"' in page.content.decode()


def test_redirect_uri_must_match_exactly(documents, editor) -> None:
    url = documents.url("/clients/exact.json")
    documents.publish("/clients/exact.json", {
        "client_id": url, "client_name": "Exact", "redirect_uris": [LOOPBACK_CALLBACK],
    })
    # Another loopback port: DOT's RFC 8252 leeway does not apply to metadata documents.
    page, _ = _get_authorize(editor, url, "http://127.0.0.1:40000/callback")
    assert page.status_code == HTTPStatus.BAD_REQUEST
    assert "Location" not in page
    assert not Connection.objects.exists()


def _assert_refused(page, reason: str) -> None:
    assert page.status_code == HTTPStatus.BAD_REQUEST, page.content[:800]
    assert "Location" not in page
    html = page.content.decode()
    assert "invalid_client" in html
    assert f'data-testid="refusal-reason">{reason}<' in html


def test_refused_when_the_document_names_another_client_id(documents, editor) -> None:
    url = documents.publish("/clients/liar.json", {
        "client_id": "https://someone-else.example/client.json",
        "redirect_uris": [HTTPS_CALLBACK],
    })
    page, _ = _get_authorize(editor, url)
    _assert_refused(page, "client_id_mismatch")
    assert "is not the URL it was fetched from" in page.content.decode()
    assert not Application.objects.filter(client_id=url).exists()


def test_refused_when_the_document_redirects(documents, editor) -> None:
    url = documents.url("/clients/moved.json")
    documents.routes["/clients/moved.json"] = Route(
        status=302, headers={"Location": documents.url("/clients/desk.json")}
    )
    documents.publish("/clients/desk.json")
    page, _ = _get_authorize(editor, url)
    _assert_refused(page, "redirect")
    assert documents.hits.get("/clients/desk.json") is None  # not followed


def test_refused_when_the_document_is_too_large(documents, editor) -> None:
    url = documents.url("/clients/huge.json")
    documents.publish("/clients/huge.json", {
        "client_id": url, "redirect_uris": [HTTPS_CALLBACK], "padding": "x" * 20_000,
    })
    page, _ = _get_authorize(editor, url)
    _assert_refused(page, "too_large")


def test_refused_when_the_document_times_out(documents, editor) -> None:
    url = documents.publish("/clients/slow.json", delay=2.5)
    page, _ = _get_authorize(editor, url)
    _assert_refused(page, "timeout")
    assert not Application.objects.filter(client_id=url).exists()


def test_refused_for_a_private_address_outside_tests(documents, editor, settings) -> None:
    settings.GATEHOUSE_CIMD_ALLOW_LOOPBACK = False  # production behaviour
    url = documents.publish("/clients/inside.json")
    page, _ = _get_authorize(editor, url)
    _assert_refused(page, "private_address")
    assert documents.hits.get("/clients/inside.json") is None  # never contacted


def test_refused_for_a_bad_redirect_uri_in_the_document(documents, editor) -> None:
    url = documents.url("/clients/plain-http.json")
    documents.publish("/clients/plain-http.json", {
        "client_id": url, "redirect_uris": ["http://evil.example/cb"],
    })
    page, _ = _get_authorize(editor, url, "http://evil.example/cb")
    _assert_refused(page, "invalid_redirect_uri")


def test_refusal_is_remembered_during_the_backoff(documents, editor) -> None:
    url = documents.publish("/clients/again.json", {"client_id": "https://x.example/c"})
    _assert_refused(_get_authorize(editor, url)[0], "client_id_mismatch")
    _assert_refused(_get_authorize(editor, url)[0], "client_id_mismatch")
    assert documents.hits["/clients/again.json"] == 1  # backed off, reason still shown


@pytest.mark.parametrize("client_id", [
    "https://[::1/clients/x.json",  # unclosed IPv6 bracket
    "https://example.invalid:99999/c.json",  # bad port
    "https://user:pw@example.invalid/c.json",  # userinfo
    "https://example.invalid/" + "a" * 3000,
    "https://example.invalid/../c.json",
    "https://\u202eexample.invalid/c.json",
])
def test_hostile_metadata_urls_get_the_error_page(documents, editor, client_id) -> None:
    page, _ = _get_authorize(editor, client_id)
    assert page.status_code == HTTPStatus.BAD_REQUEST, page.content[:500]
    assert "Location" not in page
    assert "invalid_client" in page.content.decode()
    assert not Application.objects.exists()


def test_registration_kinds_of_other_apps(make_app) -> None:
    app = make_app()
    assert registration_kind(app.application) == Registration.WORKSPACE


# --- the unmodified MCP SDK client -------------------------------------------------------------


async def _sdk_with_metadata_url(base_url: str, agent, storage, client_id: str) -> tuple:
    redirects: list[str] = []

    async def redirect_handler(authorization_url: str) -> None:
        redirects.append(await anyio.to_thread.run_sync(agent.consent, authorization_url))

    async def callback_handler() -> AuthorizationCodeResult:
        params = query_of(redirects[-1])
        return AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    provider = OAuthClientProvider(
        server_url=f"{base_url}/api/v1/me",
        client_metadata=OAuthClientMetadata(
            client_name="SDK Assistant", redirect_uris=[AnyUrl(LOOPBACK_CALLBACK)],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=client_id,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=20) as http:
        response = await http.get(f"{base_url}/api/v1/me")
    return response, redirects


@pytest.mark.django_db(transaction=True)
def test_mcp_sdk_client_uses_a_metadata_document_url(documents, live_server, members) -> None:
    url = documents.url("/clients/sdk.json")
    documents.publish("/clients/sdk.json", {
        "client_id": url, "client_name": "SDK Assistant", "redirect_uris": [LOOPBACK_CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    })
    agent = UserAgent(live_server.url, members["editor"])
    storage = MemoryTokenStorage()
    with ThreadPoolExecutor(max_workers=1) as pool:
        response, redirects = pool.submit(
            anyio.run, _sdk_with_metadata_url, live_server.url, agent, storage, url
        ).result(timeout=90)

    assert response.status_code == HTTPStatus.OK, response.text
    assert len(redirects) == 1
    body = response.json()
    assert body["principal"]["kind"] == "oauth"
    assert body["principal"]["id"] == url
    assert 'data-testid="loopback-warning"' in agent.pages[0]
    assert f"127.0.0.1:{documents.port}" in agent.pages[0]
    assert not Application.objects.filter(registration_source="dcr").exists()  # no registration
    assert Connection.objects.get().application.registration_source == "cimd"
