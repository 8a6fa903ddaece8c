"""Stateful schemathesis: sequences of calls that follow the OpenAPI document's links
(createPassport / updatePassport → getPassport, updatePassport, deletePassport by the returned
`id`), through the real WSGI stack, with every response checked against the document (status,
body, headers) and never a 5xx. `positive_data_acceptance` is left out for the reasons given in
test_schemathesis.py, `ignored_auth` because every call carries the test's key. Bounded to a
few dozen scenarios so it stays well under a minute.
"""

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from gateway.models import IdempotencyRecord
from gateway.openapi import build_document
from passports.models import Passport
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory, by, plan_named

SCENARIOS = 40
STEPS = 6

# The passports' operations only: their links are what this test follows (every operation is
# fuzzed on its own in test_schemathesis.py), and a state machine over the whole API spends its
# steps elsewhere as the API grows.
schema = schemathesis.openapi.from_dict(build_document()).include(
    path_regex=r"^/api/v1/passports"
)
schema.app = get_wsgi_application()


@pytest.fixture
def authorization(db) -> Iterator[dict[str, str]]:
    from apikeys.services import apikey_create

    workspace = WorkspaceFactory(slug="stateful", plan=plan_named("pro"))
    admin = MembershipFactory(workspace=workspace, role="admin", user=UserFactory()).user
    _key, token = apikey_create(
        workspace=workspace, name="stateful", environment="development", **by(admin),
        scopes=["audit:read", "keys:read", "passports:read", "passports:write"],
    )
    # As in test_schemathesis.py: keep WSGI requests from closing the test's own connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {token}"}
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_linked_passport_calls_conform_to_the_document(authorization) -> None:
    created = build_document()["paths"]["/api/v1/passports"]["post"]["responses"]["201"]
    assert set(created["links"]) == {"GetPassport", "UpdatePassport", "DeletePassport"}

    class Workflow(schema.as_state_machine()):
        def setup(self) -> None:
            # Each scenario starts from the same state, so hypothesis can replay one exactly.
            Passport.objects.all().delete()
            IdempotencyRecord.objects.all().delete()

        def get_call_kwargs(self, case):
            return {"headers": authorization}

        def after_call(self, response, case) -> None:
            seen[f"{case.operation.label} -> {response.status_code}"] += 1

        def validate_response(self, response, case, **kwargs) -> None:
            # Every call carries the key from get_call_kwargs, so schemathesis' check that
            # generated (invalid) credentials are refused does not apply here; authentication
            # is fuzzed in tests/security/test_fuzz.py and test_schemathesis.py.
            case.validate_response(response, transport_kwargs=kwargs,
                                   excluded_checks=[positive_data_acceptance, ignored_auth])

    seen: Counter[str] = Counter()
    Workflow.run(settings=settings(
        max_examples=SCENARIOS, stateful_step_count=STEPS, deadline=None, database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    ))
    # The links were followed: passports created in a scenario were found by their id.
    followed = sum(count for call, count in seen.items()
                   if "{passport_id}" in call and call.endswith(("-> 200", "-> 204")))
    assert followed > 0, seen
    assert not [call for call in seen if call.endswith(("-> 500", "-> 502", "-> 503"))], seen
