"""The live API against its own OpenAPI document, with schemathesis and a valid key.

Every operation gets generated requests — valid ones and, for negative testing, ones that break
the schema — sent through the real WSGI stack (middleware included). Every response must be a
documented status with a body, content type and headers that conform to the document, never a
5xx; schemathesis' other default checks (negative data rejected, auth not ignored, unsupported
methods answered 405 with Allow) apply too.

One default check is left out: `positive_data_acceptance` (every schema-valid request gets a
2xx). Some rules cannot be written in JSON Schema — a GTIN's GS1 check digit, a cursor being one
the API signed, an audit action being one that exists — so schema-valid requests can rightly get
a 400; that they get a *documented* 400 with a conforming body is still checked.
"""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config._checks import NegativeDataRejectionConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway.openapi import build_document
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory, by, plan_named

EXAMPLES_PER_OPERATION = 60

schema = schemathesis.openapi.from_dict(build_document())
schema.app = get_wsgi_application()
# A negative case can also be refused with 414: the gateway answers any URL over 4096 bytes that
# way (documented on every operation), and generated junk query strings reach that length.
_rejection = NegativeDataRejectionConfig()
schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
    expected_statuses=[*_rejection.expected_statuses, "414"]
)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Iterator[None]:
    """Django closes the connection after each WSGI request unless it is in autocommit; in a
    test transaction that would close the test's own connection. Django's test client
    disconnects this cleanup the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def authorization(db) -> dict[str, str]:
    from apikeys.services import apikey_create

    # An unlimited plan, so generated creates never meet the passport cap.
    workspace = WorkspaceFactory(slug="fuzz", plan=plan_named("pro"))
    admin = MembershipFactory(workspace=workspace, role="admin", user=UserFactory()).user
    _key, token = apikey_create(
        workspace=workspace, name="schemathesis", environment="development", **by(admin),
        scopes=["audit:read", "keys:read", "passports:read", "passports:write"],
    )
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
    database=None,
)
def test_the_api_conforms_to_its_openapi_document(case, authorization) -> None:
    case.call_and_validate(headers=authorization, excluded_checks=[positive_data_acceptance])
