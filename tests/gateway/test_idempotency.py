"""`Idempotency-Key` through the real API door (SPEC §6), with real concurrency."""

import threading
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

import passports.services
from apikeys.services import apikey_create
from gateway.idempotency import REUSED_MESSAGE
from gateway.models import IdempotencyRecord
from passports.models import Passport
from tests.factories import by

ALL = ["passports:read", "passports:write"]
BODY = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Widget"}


@pytest.fixture
def token(workspace, members) -> str:
    return apikey_create(
        workspace=workspace, name="Idem", scopes=ALL, environment="development",
        **by(members["admin"]),
    )[1]


@pytest.fixture
def api(token) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def _create(api: Client, key: str, body: dict | None = None, **kwargs):
    return api.post("/api/v1/passports", body or BODY, content_type="application/json",
                    headers={"Idempotency-Key": key}, **kwargs)


@pytest.mark.django_db
def test_replay_returns_the_first_response_byte_for_byte_and_counts_once(api) -> None:
    first = _create(api, "order-1")
    assert first.status_code == HTTPStatus.CREATED
    assert "Idempotent-Replayed" not in first
    again = _create(api, "order-1")
    assert again.status_code == HTTPStatus.CREATED
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert Passport.objects.count() == 1
    # One write counted: the replay consumed no budget.
    assert again["X-RateLimit-Remaining"] == first["X-RateLimit-Remaining"] == "99"


@pytest.mark.django_db
def test_same_key_different_body_is_422(api) -> None:
    _create(api, "order-2")
    response = _create(api, "order-2", {**BODY, "serial_number": "SN-2"})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json() == {"error": "idempotency_key_reused", "message": REUSED_MESSAGE}
    assert Passport.objects.count() == 1


@pytest.mark.django_db
def test_same_key_different_path_or_content_type_is_422(api) -> None:
    created = _create(api, "k").json()
    patch = api.patch(f"/api/v1/passports/{created['id']}", BODY, content_type="application/json",
                      headers={"Idempotency-Key": "k"})
    assert patch.json()["error"] == "idempotency_key_reused"
    other_type = api.post("/api/v1/passports", b"gtin=1", content_type="text/plain",
                          headers={"Idempotency-Key": "k"})
    assert other_type.status_code == HTTPStatus.UNPROCESSABLE_ENTITY


@pytest.mark.django_db
def test_keys_are_per_workspace(api, other_workspace, members) -> None:
    from tests.factories import MembershipFactory

    MembershipFactory(workspace=other_workspace, user=members["admin"], role="admin")
    _k, other_token = apikey_create(
        workspace=other_workspace, name="Other", scopes=ALL, environment="development",
        **by(members["admin"]),
    )
    assert _create(api, "shared").status_code == HTTPStatus.CREATED
    other = _create(Client(headers={"Authorization": f"Bearer {other_token}"}), "shared")
    assert other.status_code == HTTPStatus.CREATED
    assert "Idempotent-Replayed" not in other


@pytest.mark.django_db
def test_validation_errors_are_stored_and_replayed(api) -> None:
    bad = _create(api, "bad-1", {**BODY, "gtin": "123"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    again = _create(api, "bad-1", {**BODY, "gtin": "123"})
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == bad.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key", ["", "x" * 256, "clé-non-ascii", "has space", "tab\there"],
    ids=["empty", "256 chars", "non-ascii", "space", "tab"],
)
def test_malformed_keys_are_400_and_change_nothing(api, key) -> None:
    response = api.post("/api/v1/passports", BODY, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_request"
    assert "Idempotency-Key" in response.json()["fields"]
    assert Passport.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.django_db
def test_255_character_key_is_accepted(api) -> None:
    assert _create(api, "k" * 255).status_code == HTTPStatus.CREATED


@pytest.mark.django_db
def test_server_error_releases_the_key_for_a_retry(api, token, monkeypatch) -> None:
    original = passports.services.passport_create

    def broken(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(passports.services, "passport_create", broken)
    failed = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {token}"})
    assert _create(failed, "retry-me").status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert IdempotencyRecord.objects.count() == 0
    monkeypatch.setattr(passports.services, "passport_create", original)
    retried = _create(api, "retry-me")
    assert retried.status_code == HTTPStatus.CREATED
    assert "Idempotent-Replayed" not in retried


@pytest.mark.django_db
def test_expired_record_is_not_replayed(api) -> None:
    _create(api, "old")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _create(api, "old", {**BODY, "serial_number": "SN-9"})
    assert response.status_code == HTTPStatus.CREATED
    assert Passport.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_gets_409_while_the_first_runs(token, monkeypatch) -> None:
    """Two real threads: the first request is held inside the view; the duplicate arrives and
    finds the claim in flight."""
    entered, release = threading.Event(), threading.Event()
    original = passports.services.passport_create

    def slow(**kwargs):
        entered.set()
        assert release.wait(10)
        return original(**kwargs)

    monkeypatch.setattr(passports.services, "passport_create", slow)
    results = {}

    def first() -> None:
        try:
            client = Client(headers={"Authorization": f"Bearer {token}"})
            results["first"] = _create(client, "race")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(10)
    duplicate = _create(Client(headers={"Authorization": f"Bearer {token}"}), "race")
    release.set()
    thread.join()
    assert duplicate.status_code == HTTPStatus.CONFLICT
    assert duplicate.json()["error"] == "idempotency_key_in_use"
    assert results["first"].status_code == HTTPStatus.CREATED
    replay = _create(Client(headers={"Authorization": f"Bearer {token}"}), "race")
    assert replay["Idempotent-Replayed"] == "true"
    assert Passport.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_duplicates_execute_once(token) -> None:
    """16 threads send the same request with one key at once: one execution, the others see
    409 (still running) or the replay — never a second passport."""
    barrier = threading.Barrier(16)
    statuses: list[tuple[int, str | None]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            client = Client(headers={"Authorization": f"Bearer {token}"})
            barrier.wait()
            response = _create(client, "same")
            with lock:
                statuses.append((response.status_code, response.get("Idempotent-Replayed")))
                if response.status_code >= 400:
                    errors.append(response.json()["error"])
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Passport.objects.count() == 1
    fresh = [s for s in statuses if s == (HTTPStatus.CREATED, None)]
    assert len(fresh) == 1
    assert all(s in {(201, "true"), (409, None), (201, None)} for s in statuses)
    # A 409 here is the key in flight, never the passport's uniqueness rule catching a rerun.
    assert set(errors) <= {"idempotency_key_in_use"}
