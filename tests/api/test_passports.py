"""`/api/v1/passports`: CRUD, GS1 validation, conflicts, pagination, tenancy, plan caps."""

from http import HTTPStatus

import pytest

from audit.models import AuditEvent
from passports.gs1 import gtin_check_digit, gtin_problem
from passports.models import Passport
from passports.services import passport_create
from tests.factories import WorkspaceFactory, by, plan_named

pytestmark = pytest.mark.django_db

DRILL = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Drill"}


def make_passport(workspace, n: int = 1, **fields) -> Passport:
    values = {**DRILL, "serial_number": f"SN-{n}", **fields}
    return passport_create(workspace=workspace, **values, **by())


def post(client, body, **kwargs):
    return client.post("/api/v1/passports", body, content_type="application/json", **kwargs)


def patch(client, passport_id: str, body):
    return client.patch(f"/api/v1/passports/{passport_id}", body,
                        content_type="application/json")


# --- create --------------------------------------------------------------------------------------


def test_create_returns_the_passport_with_its_location(client_api, make_key, workspace) -> None:
    response = post(client_api, {**DRILL, "status": "published"})
    assert response.status_code == HTTPStatus.CREATED
    body = response.json()
    passport = Passport.objects.get()
    assert body == {
        "id": passport.public_id,
        "gtin": "4006381333931",
        "serial_number": "SN-1",
        "product_name": "Drill",
        "status": "published",
        "collection": None,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert body["id"].startswith("psp_") and body["created_at"].endswith("Z")
    assert response["Location"] == f"/api/v1/passports/{passport.public_id}"
    assert passport.workspace == workspace


def test_create_defaults_to_draft_and_is_audited_as_the_key(make_key, api) -> None:
    key, token = make_key(name="ERP sync")
    response = post(api(token), DRILL)
    assert response.json()["status"] == "draft"
    event = AuditEvent.objects.get(action="passport.created")
    assert (event.actor_type, event.actor_id, event.actor_label) == (
        "api_key", key.public_id, "ERP sync"
    )
    assert event.target_id == response.json()["id"]
    assert event.ip == "127.0.0.1"


@pytest.mark.parametrize(
    "gtin", ["96385074", "036000291452", "4006381333931", "00036000291452", "10614141000415"]
)
def test_every_gtin_length_with_a_valid_check_digit_is_accepted(client_api, gtin) -> None:
    assert post(client_api, {**DRILL, "gtin": gtin}).status_code == HTTPStatus.CREATED


@pytest.mark.parametrize(
    ("gtin", "problem"),
    [
        ("4006381333932", "check digit"),
        ("4006381333930", "check digit"),
        ("400638133393", "check digit"),
        ("1234567", "8, 12, 13 or 14"),
        ("123456789", "8, 12, 13 or 14"),
        ("123456789012345", "8, 12, 13 or 14"),
        ("40063813339３1", "digits only"),
        ("4006-381333931", "digits only"),
        ("", "digits only"),
    ],
)
def test_bad_gtins_are_refused_with_the_reason(client_api, gtin, problem) -> None:
    response = post(client_api, {**DRILL, "gtin": gtin})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    body = response.json()
    assert body["error"] == "invalid_request"
    assert list(body["fields"]) == ["gtin"]
    assert problem in body["fields"]["gtin"]
    assert not Passport.objects.exists()


def test_gs1_check_digit_matches_published_examples() -> None:
    # GS1's own examples: GTIN-13 629104150021 → 3; GTIN-12 03600029145 → 2.
    assert gtin_check_digit("629104150021") == 3
    assert gtin_check_digit("03600029145") == 2
    for body in ("0", "1234567", "9780306406", "123456789012"):
        full = body + str(gtin_check_digit(body))
        if len(full) in (8, 12, 13, 14):
            assert gtin_problem(full) is None
            wrong = body + str((gtin_check_digit(body) + 1) % 10)
            assert gtin_problem(wrong) is not None


def test_every_bad_field_is_named(client_api) -> None:
    response = post(client_api, {
        "gtin": "123", "serial_number": "has space", "product_name": "   ", "status": "live",
    })
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert set(response.json()["fields"]) == {"gtin", "serial_number", "product_name", "status"}
    assert not Passport.objects.exists()


@pytest.mark.parametrize(
    ("serial", "ok"),
    [("A", True), ("x" * 20, True), ("AB-12/34.5_(6)", True), ("x" * 21, False),
     ("", False), ("with space", False), ("ünïcode", False), ("tab\there", False)],
)
def test_serial_numbers_follow_gs1_ai_21(client_api, serial, ok) -> None:
    response = post(client_api, {**DRILL, "serial_number": serial})
    expected = HTTPStatus.CREATED if ok else HTTPStatus.BAD_REQUEST
    assert response.status_code == expected, response.json()


def test_product_name_limits(client_api) -> None:
    assert post(client_api, {**DRILL, "product_name": "x" * 201}).status_code == 400
    assert post(client_api, {**DRILL, "product_name": "bad\x00name"}).status_code == 400
    response = post(client_api, {**DRILL, "product_name": "  Bohrmaschine ÄÖÜ 🔩  "})
    assert response.status_code == HTTPStatus.CREATED
    assert response.json()["product_name"] == "Bohrmaschine ÄÖÜ 🔩"


def test_duplicate_serial_for_a_gtin_is_409_conflict(client_api, workspace) -> None:
    assert post(client_api, DRILL).status_code == HTTPStatus.CREATED
    response = post(client_api, {**DRILL, "product_name": "Other"})
    assert response.status_code == HTTPStatus.CONFLICT
    assert response.json()["error"] == "conflict"
    assert Passport.objects.count() == 1
    # The same serial under another GTIN, and the same pair in another workspace, are fine.
    assert post(client_api, {**DRILL, "gtin": "96385074"}).status_code == HTTPStatus.CREATED
    other = WorkspaceFactory()
    make_passport(other, 1)
    assert Passport.objects.count() == 3


# --- plan caps -----------------------------------------------------------------------------------


def test_plan_without_overage_stops_at_its_cap(client_api, workspace) -> None:
    assert workspace.plan.code == "free" and workspace.plan.passports_limit == 25
    for n in range(25):
        make_passport(workspace, n)
    response = post(client_api, {**DRILL, "serial_number": "ONE-MORE"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["error"] == "plan_limit_reached"
    assert "25" in response.json()["message"]
    assert Passport.objects.count() == 25


def test_plan_with_overage_answers_402_at_its_cap(client_api, workspace) -> None:
    workspace.plan = plan_named("basic")
    workspace.save()
    for n in range(workspace.plan.passports_limit):
        make_passport(workspace, n)
    response = post(client_api, {**DRILL, "serial_number": "ONE-MORE"})
    assert response.status_code == HTTPStatus.PAYMENT_REQUIRED
    assert response.json()["error"] == "overage_required"
    assert Passport.objects.count() == workspace.plan.passports_limit


# --- read ----------------------------------------------------------------------------------------


def test_get_a_passport(client_api, workspace) -> None:
    passport = make_passport(workspace)
    response = client_api.get(f"/api/v1/passports/{passport.public_id}")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["id"] == passport.public_id


@pytest.mark.parametrize(
    "passport_id",
    ["psp_" + "A" * 22, "psp_x", "key_" + "A" * 22, "%00", "psp_" + "A" * 21 + "%00",
     "x" * 4000, "..%2F..%2Fetc"],
)
def test_unknown_or_malformed_ids_are_404(client_api, passport_id) -> None:
    response = client_api.get(f"/api/v1/passports/{passport_id}")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"] == "not_found"


def test_another_workspaces_passport_is_404_for_every_method(
    client_api, other_workspace
) -> None:
    theirs = make_passport(other_workspace, status="draft")
    url = f"/api/v1/passports/{theirs.public_id}"
    for response in (
        client_api.get(url),
        patch(client_api, theirs.public_id, {"status": "published"}),
        client_api.delete(url),
    ):
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert response.json()["error"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.status == "draft"
    assert not client_api.get("/api/v1/passports").json()["data"]


def test_list_pages_in_creation_order(client_api, workspace) -> None:
    created = [make_passport(workspace, n).public_id for n in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/passports?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client_api.get(url).json()
        seen += [p["id"] for p in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert pages == 3


def test_list_defaults_to_20(client_api, workspace) -> None:
    for n in range(21):
        make_passport(workspace, n)
    body = client_api.get("/api/v1/passports").json()
    assert len(body["data"]) == 20 and body["next_cursor"]


def test_list_filters_by_status(client_api, workspace) -> None:
    draft = make_passport(workspace, 1)
    published = make_passport(workspace, 2, status="published")
    ids = lambda url: [p["id"] for p in client_api.get(url).json()["data"]]  # noqa: E731
    assert ids("/api/v1/passports?status=draft") == [draft.public_id]
    assert ids("/api/v1/passports?status=published") == [published.public_id]
    response = client_api.get("/api/v1/passports?status=archived")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert list(response.json()["fields"]) == ["status"]


def test_list_costs_the_same_queries_for_any_page_size(
    client_api, workspace, django_assert_max_num_queries
) -> None:
    for n in range(25):
        make_passport(workspace, n)
    # key lookup, block marker (DB cache), the passport-reads budget (DB counter), the page
    with django_assert_max_num_queries(4):
        response = client_api.get("/api/v1/passports?limit=100")
    assert len(response.json()["data"]) == 25


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"), ("limit=101", "limit"), ("limit=-1", "limit"), ("limit=", "limit"),
        ("limit=abc", "limit"), ("limit=1e3", "limit"), ("limit=" + "9" * 400, "limit"),
        ("limit=%EF%BC%95", "limit"), ("limit=%C2%B2", "limit"), ("limit=" + "9" * 4000, "limit"),
        ("cursor=forged", "cursor"), ("cursor=" + "A" * 4000, "cursor"),
        ("stauts=draft", "stauts"), ("limit=5&limit=6", "limit"),
    ],
)
def test_bad_list_parameters_are_400_naming_them(client_api, workspace, query, field) -> None:
    make_passport(workspace)
    response = client_api.get(f"/api/v1/passports?{query}")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]


def test_a_cursor_only_works_for_its_own_list(client_api, workspace, api, make_key,
                                              other_workspace) -> None:
    for n in range(3):
        make_passport(workspace, n)
    cursor = client_api.get("/api/v1/passports?limit=1").json()["next_cursor"]
    response = client_api.get(f"/api/v1/passports?status=draft&cursor={cursor}")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "cursor" in response.json()["fields"]
    keys_response = client_api.get(f"/api/v1/keys?cursor={cursor}")
    assert keys_response.status_code == HTTPStatus.BAD_REQUEST
    _key, token = make_key(workspace=other_workspace)
    theirs = api(token).get(f"/api/v1/passports?cursor={cursor}")
    assert theirs.status_code == HTTPStatus.BAD_REQUEST


# --- update and delete ---------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client_api, workspace) -> None:
    passport = make_passport(workspace)
    response = patch(client_api, passport.public_id, {"status": "published"})
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "published" and body["product_name"] == "Drill"
    assert body["updated_at"] > body["created_at"]
    passport.refresh_from_db()
    assert passport.status == "published"
    event = AuditEvent.objects.get(action="passport.updated")
    assert event.metadata == {
        "changed": ["status"], "door": "api", "request_id": response["X-Request-Id"],
    }


def test_patch_with_nothing_to_change_writes_nothing(client_api, workspace) -> None:
    passport = make_passport(workspace)
    for body in ({}, {"status": "draft"}):
        response = patch(client_api, passport.public_id, body)
        assert response.status_code == HTTPStatus.OK
        assert response.json()["updated_at"] == response.json()["created_at"]
    assert not AuditEvent.objects.filter(action="passport.updated").exists()


def test_patch_into_an_existing_serial_is_409(client_api, workspace) -> None:
    make_passport(workspace, 1)
    second = make_passport(workspace, 2)
    response = patch(client_api, second.public_id, {"serial_number": "SN-1"})
    assert response.status_code == HTTPStatus.CONFLICT
    second.refresh_from_db()
    assert second.serial_number == "SN-2"


@pytest.mark.parametrize(
    "body",
    [{"status": None}, {"status": True}, {"gtin": 4006381333931}, {"product_name": ["x"]},
     {"colour": "red"}, {"gtin": "123"}],
)
def test_bad_patches_are_400_and_change_nothing(client_api, workspace, body) -> None:
    passport = make_passport(workspace)
    response = patch(client_api, passport.public_id, body)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert set(response.json()["fields"]) == set(body)
    passport.refresh_from_db()
    assert (passport.gtin, passport.status, passport.product_name) == (
        "4006381333931", "draft", "Drill"
    )


def test_delete_then_it_is_gone(client_api, workspace) -> None:
    passport = make_passport(workspace)
    url = f"/api/v1/passports/{passport.public_id}"
    response = client_api.delete(url)
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert response.content == b""
    assert not Passport.objects.exists()
    assert client_api.get(url).status_code == HTTPStatus.NOT_FOUND
    assert client_api.delete(url).status_code == HTTPStatus.NOT_FOUND
    assert AuditEvent.objects.filter(action="passport.deleted").count() == 1
