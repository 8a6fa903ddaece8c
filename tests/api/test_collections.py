"""SPEC §11: collections (`/api/v1/collections`), `collection` on passports, and API keys
restricted to selected collections (404 never 403, creates must name one of the key's
collections, a deleted collection never widens a key)."""

from http import HTTPStatus

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apikeys.services import apikey_set_restriction
from audit.models import AuditEvent
from passports.models import Collection, Passport
from passports.services import collection_create, collection_delete, passport_create
from tests.factories import by

pytestmark = pytest.mark.django_db

SCOPES = ["passports:read", "passports:write", "collections:read", "collections:write"]
DRILL = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Drill"}


def _client(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def _passport(workspace, n: int, collection: Collection | None = None) -> Passport:
    return passport_create(
        workspace=workspace, **{**DRILL, "serial_number": f"SN-{n}"}, collection=collection,
        **by(),
    )


@pytest.fixture
def shelves(workspace) -> dict[str, Collection]:
    return {
        name: collection_create(workspace=workspace, name=name, **by())
        for name in ("Tools", "Garden")
    }


def test_collections_crud_through_the_api_is_audited(make_key, workspace) -> None:
    _key, token = make_key(SCOPES)
    api = _client(token)
    created = api.post("/api/v1/collections", {"name": "  Tools "}, content_type="application/json")
    assert created.status_code == HTTPStatus.CREATED, created.content
    body = created.json()
    assert body["name"] == "Tools" and body["id"].startswith("col_")
    assert created["Location"] == f"/api/v1/collections/{body['id']}"
    listed = api.get("/api/v1/collections").json()
    assert [c["id"] for c in listed["data"]] == [body["id"]]
    renamed = api.patch(f"/api/v1/collections/{body['id']}", {"name": "Hand tools"},
                        content_type="application/json")
    assert renamed.json()["name"] == "Hand tools"
    assert api.delete(f"/api/v1/collections/{body['id']}").status_code == HTTPStatus.NO_CONTENT
    assert not Collection.objects.exists()
    actions = list(
        AuditEvent.objects.filter(target_type="collection").order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["collection.created", "collection.updated", "collection.deleted"]


@pytest.mark.parametrize(
    "name", ["", "   ", "a\x00b", "x" * 101, "line\nbreak", "\ud800"],
)
def test_a_bad_collection_name_is_a_400_and_saves_nothing(make_key, name) -> None:
    _key, token = make_key(SCOPES)
    response = _client(token).post(
        "/api/v1/collections", {"name": name}, content_type="application/json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_request"
    assert not Collection.objects.exists()


def test_a_duplicate_collection_name_is_a_409(make_key, shelves) -> None:
    _key, token = make_key(SCOPES)
    response = _client(token).post(
        "/api/v1/collections", {"name": "Tools"}, content_type="application/json"
    )
    assert response.status_code == HTTPStatus.CONFLICT
    assert Collection.objects.count() == 2


def test_collections_need_their_scopes(make_key) -> None:
    _key, token = make_key(["passports:read"])
    response = _client(token).get("/api/v1/collections")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["required_scope"] == "collections:read"


def test_passports_carry_their_collection_and_filter_by_it(make_key, workspace, shelves) -> None:
    _key, token = make_key(SCOPES)
    api = _client(token)
    tools = shelves["Tools"].public_id
    created = api.post("/api/v1/passports", {**DRILL, "collection": tools},
                       content_type="application/json")
    assert created.status_code == HTTPStatus.CREATED
    assert created.json()["collection"] == tools
    _passport(workspace, 2)
    assert [p["collection"] for p in api.get("/api/v1/passports").json()["data"]] == [tools, None]
    only = api.get(f"/api/v1/passports?collection={tools}").json()["data"]
    assert [p["id"] for p in only] == [created.json()["id"]]
    moved = api.patch(f"/api/v1/passports/{created.json()['id']}", {"collection": None},
                      content_type="application/json")
    assert moved.json()["collection"] is None
    assert Passport.objects.get(public_id=created.json()["id"]).collection is None


def test_another_workspaces_collection_is_refused_by_name(
    make_key, workspace, other_workspace
) -> None:
    theirs = collection_create(workspace=other_workspace, name="Theirs", **by())
    _key, token = make_key(SCOPES)
    api = _client(token)
    response = api.post("/api/v1/passports", {**DRILL, "collection": theirs.public_id},
                        content_type="application/json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "collection" in response.json()["fields"]
    assert not Passport.objects.exists()
    assert api.get(f"/api/v1/collections/{theirs.public_id}").status_code == HTTPStatus.NOT_FOUND
    bad_filter = api.get(f"/api/v1/passports?collection={theirs.public_id}")
    assert bad_filter.status_code == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize("value", [123, ["col_x"], {"a": 1}, "col_\x00", "gk_dev_" + "a" * 40])
def test_a_collection_that_is_not_an_id_is_a_400(make_key, value) -> None:
    _key, token = make_key(SCOPES)
    response = _client(token).post("/api/v1/passports", {**DRILL, "collection": value},
                                   content_type="application/json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not Passport.objects.exists()


# --- restricted keys -----------------------------------------------------------------------------


def test_a_restricted_key_sees_only_its_collections_and_404s_the_rest(
    make_key, workspace, shelves
) -> None:
    tools, garden = shelves["Tools"], shelves["Garden"]
    mine = _passport(workspace, 1, tools)
    other = _passport(workspace, 2, garden)
    loose = _passport(workspace, 3)
    _key, token = make_key(SCOPES, collections=[tools.public_id])
    api = _client(token)
    assert [p["id"] for p in api.get("/api/v1/passports").json()["data"]] == [mine.public_id]
    assert api.get(f"/api/v1/passports/{mine.public_id}").status_code == HTTPStatus.OK
    for hidden in (other, loose):
        for response in (
            api.get(f"/api/v1/passports/{hidden.public_id}"),
            api.patch(f"/api/v1/passports/{hidden.public_id}", {"product_name": "X"},
                      content_type="application/json"),
            api.delete(f"/api/v1/passports/{hidden.public_id}"),
        ):
            assert response.status_code == HTTPStatus.NOT_FOUND
            assert response.json()["error"] == "not_found"
    assert Passport.objects.count() == 3
    assert [c["id"] for c in api.get("/api/v1/collections").json()["data"]] == [tools.public_id]
    assert api.get(f"/api/v1/collections/{garden.public_id}").status_code == HTTPStatus.NOT_FOUND
    assert api.get(f"/api/v1/passports?collection={garden.public_id}").status_code == 400


def test_a_restricted_key_creates_only_inside_its_collections(make_key, workspace, shelves) -> None:
    tools, garden = shelves["Tools"], shelves["Garden"]
    _key, token = make_key(SCOPES, collections=[tools.public_id])
    api = _client(token)
    for body in ({**DRILL}, {**DRILL, "collection": None},
                 {**DRILL, "collection": garden.public_id}):
        response = api.post("/api/v1/passports", body, content_type="application/json")
        assert response.status_code == HTTPStatus.BAD_REQUEST, body
        assert response.json()["error"] == "invalid_request"
        assert "collection" in response.json()["fields"]
    assert not Passport.objects.exists()
    ok = api.post("/api/v1/passports", {**DRILL, "collection": tools.public_id},
                  content_type="application/json")
    assert ok.status_code == HTTPStatus.CREATED
    passport_id = ok.json()["id"]
    for target in (None, garden.public_id):
        out = api.patch(f"/api/v1/passports/{passport_id}", {"collection": target},
                        content_type="application/json")
        assert out.status_code == HTTPStatus.BAD_REQUEST
    assert Passport.objects.get().collection == tools
    refused = api.post("/api/v1/collections", {"name": "Mine"}, content_type="application/json")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert Collection.objects.count() == 2


def test_deleting_a_collection_never_widens_a_key(make_key, workspace, shelves) -> None:
    tools = shelves["Tools"]
    was_in_tools = _passport(workspace, 1, tools)
    _passport(workspace, 2)
    key, token = make_key(SCOPES, collections=[tools.public_id])
    collection_delete(collection=tools, **by())
    api = _client(token)
    assert api.get("/api/v1/passports").json()["data"] == []
    assert api.get(f"/api/v1/passports/{was_in_tools.public_id}").status_code == 404
    assert api.get("/api/v1/collections").json()["data"] == []
    key.refresh_from_db()
    assert key.collections == [tools.pk]  # the dead id stays and matches nothing


def test_restriction_is_set_by_its_service_audited_and_seen_on_the_next_request(
    make_key, workspace, shelves, members
) -> None:
    tools = shelves["Tools"]
    _passport(workspace, 1, tools)
    _passport(workspace, 2)
    key, token = make_key(SCOPES)
    api = _client(token)
    assert len(api.get("/api/v1/passports").json()["data"]) == 2
    apikey_set_restriction(key=key, collections=[tools.public_id], **by(members["admin"]))
    assert len(api.get("/api/v1/passports").json()["data"]) == 1
    event = AuditEvent.objects.filter(action="key.updated", target_id=key.public_id).get()
    assert event.metadata["collections"] == [None, [tools.public_id]]
    apikey_set_restriction(key=key, collections=None, **by(members["admin"]))
    assert len(api.get("/api/v1/passports").json()["data"]) == 2


def test_an_unknown_or_foreign_collection_on_a_key_is_refused_naming_it(
    make_key, workspace, other_workspace, members
) -> None:
    theirs = collection_create(workspace=other_workspace, name="Theirs", **by())
    key, _token = make_key(SCOPES)
    for bad in ([theirs.public_id], ["col_nope"], ["\x00"]):
        with pytest.raises(ValidationError) as caught:
            apikey_set_restriction(key=key, collections=bad, **by(members["admin"]))
        assert "collections" in caught.value.message_dict
    key.refresh_from_db()
    assert key.collections is None
    with pytest.raises(ValidationError):
        make_key(SCOPES, name="Bad", collections=[theirs.public_id])
    assert not key.workspace.api_keys.filter(name="Bad").exists()


def test_a_restricted_key_guessing_ids_costs_no_more_queries_than_any_404(
    make_key, workspace, shelves
) -> None:
    """The restriction is a condition in the query the request already makes."""
    hidden = _passport(workspace, 1, shelves["Garden"])
    _key, open_token = make_key(SCOPES, name="Open")
    _key, token = make_key(SCOPES, name="Narrow", collections=[shelves["Tools"].public_id])
    counts = []
    for bearer, target in ((open_token, "psp_" + "0" * 22), (token, hidden.public_id)):
        api = _client(bearer)
        api.get(f"/api/v1/passports/{target}")  # warm any per-process caches
        with CaptureQueriesContext(connection) as captured:
            assert api.get(f"/api/v1/passports/{target}").status_code == 404
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_get_keys_shows_each_keys_collections(make_key, shelves) -> None:
    tools = shelves["Tools"]
    _open, token = make_key(["keys:read"], name="Open")
    narrow, _t = make_key(SCOPES, name="Narrow", collections=[tools.public_id])
    nothing, _t = make_key(SCOPES, name="Nothing", collections=[])
    keys = {k["name"]: k for k in _client(token).get("/api/v1/keys").json()["data"]}
    assert keys["Open"]["collections"] is None
    assert keys["Narrow"]["collections"] == [tools.public_id]
    assert keys["Nothing"]["collections"] == []
