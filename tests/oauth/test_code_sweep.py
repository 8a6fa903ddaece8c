"""Expired, never-exchanged authorization codes are deleted within a minute of expiring, by the
process that issued them (oauth.codesweep), not at the next `prune` (issue 13, point 12d)."""

from __future__ import annotations

import time
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone
from oauth2_provider.models import Grant

from oauth import codesweep
from oauth.codesweep import code_sweeper, expired_codes_delete
from oauth.models import USED_CODE_RETENTION, GrantLink, UsedAuthorizationCode

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sweeper(monkeypatch):
    monkeypatch.setattr(codesweep, "BUCKET_SECONDS", 1)  # the test need not wait 10 s buckets
    code_sweeper.enabled = True
    yield code_sweeper
    code_sweeper.enabled = False


def wait_until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_an_expired_code_is_deleted_without_prune(
    sweeper, settings, client_for, oauth_app, authorize, exchange
) -> None:
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "AUTHORIZATION_CODE_EXPIRE_SECONDS": 1}
    expiring = authorize(client_for("editor"), oauth_app)
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60}
    live = authorize(client_for("editor"), oauth_app)
    assert Grant.objects.count() == 2

    assert wait_until(lambda: not Grant.objects.filter(code=expiring.code).exists())

    assert not GrantLink.objects.filter(grant__code=expiring.code).exists()
    assert Grant.objects.filter(code=live.code).exists()  # not expired: untouched
    assert exchange(oauth_app, expiring).json()["error"] == "invalid_grant"
    assert exchange(oauth_app, live).status_code == HTTPStatus.OK


def test_sweep_deletes_only_expired_codes_and_old_used_code_records(
    client_for, oauth_app, authorize, exchange
) -> None:
    used = authorize(client_for("editor"), oauth_app)
    assert exchange(oauth_app, used).status_code == HTTPStatus.OK
    waiting = authorize(client_for("editor"), oauth_app)
    expired = authorize(client_for("editor"), oauth_app)
    Grant.objects.filter(code=expired.code).update(expires=timezone.now() - timedelta(seconds=1))

    assert expired_codes_delete(batch=1) == 1
    assert list(Grant.objects.values_list("code", flat=True)) == [waiting.code]
    assert UsedAuthorizationCode.objects.count() == 1  # remembered while it may be replayed
    later = timezone.now() + USED_CODE_RETENTION + timedelta(seconds=1)
    expired_codes_delete(now=later)
    assert UsedAuthorizationCode.objects.count() == 0
