import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from apikeys.models import KeyRequest, KeyUsageDay
from apikeys.services import apikey_create
from gateway.usage import RECENT_PER_KEY, UsageBuffer
from tests.factories import by

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(workspace, members):
    key, _token = apikey_create(
        workspace=workspace, name="Usage", scopes=["passports:read"], environment="development",
        **by(members["admin"]),
    )
    return key


def _record(buffer: UsageBuffer, key, at: datetime, ip: str = "10.0.0.1") -> None:
    buffer.record(key_id=key.pk, at=at, ip=ip, method="GET", path="/api/v1/me", status=200,
                  latency_ms=3)


def test_flush_writes_counts_days_and_recent_requests(key) -> None:
    buffer = UsageBuffer()
    day1 = datetime(2026, 11, 22, 23, 59, tzinfo=UTC)
    day2 = day1 + timedelta(minutes=2)
    for i in range(130):
        _record(buffer, key, (day1 if i < 30 else day2) + timedelta(microseconds=i))
    assert buffer.flush() == 130
    key.refresh_from_db()
    assert key.request_count == 130
    assert key.last_used_at == day2 + timedelta(microseconds=129)
    days = dict(KeyUsageDay.objects.filter(api_key=key).values_list("day", "count"))
    assert days == {day1.date(): 30, day2.date(): 100}
    assert KeyRequest.objects.filter(api_key=key).count() == RECENT_PER_KEY
    assert buffer.flush() == 0  # nothing twice


def test_flushes_accumulate_and_last_used_only_moves_forward(key) -> None:
    late = datetime(2026, 11, 23, 12, tzinfo=UTC)
    a, b = UsageBuffer(), UsageBuffer()  # two worker processes, flushing out of order
    _record(a, key, late, ip="10.0.0.2")
    _record(b, key, late - timedelta(hours=1), ip="10.0.0.9")
    a.flush()
    b.flush()
    key.refresh_from_db()
    assert key.request_count == 2
    assert key.last_used_at == late
    assert key.last_used_ip == "10.0.0.2"
    assert KeyUsageDay.objects.get(api_key=key).count == 2


def test_recent_requests_trimmed_across_flushes(key) -> None:
    buffer = UsageBuffer()
    t = datetime(2026, 11, 23, tzinfo=UTC)
    for round_ in range(3):
        for i in range(60):
            _record(buffer, key, t + timedelta(seconds=round_ * 100 + i))
        buffer.flush()
    kept = KeyRequest.objects.filter(api_key=key)
    assert kept.count() == RECENT_PER_KEY
    assert min(kept.values_list("at", flat=True)) == t + timedelta(seconds=120)


def test_prune_removes_expired_idempotency_old_usage_and_counters(key, workspace) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    from core.models import Counter
    from gateway.models import IdempotencyRecord

    now = timezone.now()
    old = now - timedelta(days=91)
    KeyUsageDay.objects.create(api_key=key, day=old.date(), count=5)
    KeyUsageDay.objects.create(api_key=key, day=now.date(), count=7)
    KeyRequest.objects.create(api_key=key, at=old, method="GET", path="/x", status=200)
    KeyRequest.objects.create(api_key=key, at=now, method="GET", path="/y", status=200)
    for name, expires in (("gone", now - timedelta(seconds=1)), ("kept", now + timedelta(hours=1))):
        IdempotencyRecord.objects.create(
            workspace=workspace, key=name, fingerprint="f", status="completed",
            locked_until=now, expires_at=expires,
        )
        Counter.objects.create(key=name, count=1, expires_at=expires)
    call_command("prune", "--step", "api")
    assert list(KeyUsageDay.objects.values_list("count", flat=True)) == [7]
    assert list(KeyRequest.objects.values_list("path", flat=True)) == ["/y"]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["kept"]
    assert list(Counter.objects.values_list("key", flat=True)) == ["kept"]


# --- Poison (issue 13 point 9) ------------------------------------------------------------------


def test_a_nul_in_the_path_is_recorded_and_does_not_block_other_tenants(key, members) -> None:
    """`GET /api/v1/passports/psp_%00` once made every later flush of the worker fail (PostgreSQL
    refuses NUL in text): the recorded path is cleaned, every tenant's usage is written."""
    from django.test import Client

    from gateway.usage import usage_buffer, usage_flush
    from tests.factories import WorkspaceFactory

    _key, token = apikey_create(
        workspace=key.workspace, name="Poisoner", scopes=["passports:read"],
        environment="development", **by(members["admin"]),
    )
    other_ws = WorkspaceFactory(slug="other-tenant")
    other, other_token = apikey_create(
        workspace=other_ws, name="Other tenant", scopes=["passports:read"],
        environment="development",
        **by(),
    )
    poisoner = Client(headers={"Authorization": f"Bearer {token}"})
    bystander = Client(headers={"Authorization": f"Bearer {other_token}"})
    usage_buffer.discard()
    assert poisoner.get("/api/v1/passports/psp_%00").status_code == 404
    assert poisoner.get("/api/v1/passports/psp_%00%00x").status_code == 404
    assert bystander.get("/api/v1/me").status_code == 200
    assert usage_flush() == 3
    assert usage_flush() == 0  # nothing left behind to fail the next flush
    assert bystander.get("/api/v1/me").status_code == 200
    assert usage_flush() == 1
    other.refresh_from_db()
    assert other.request_count == 2
    assert KeyRequest.objects.filter(api_key=other).count() == 2
    paths = set(KeyRequest.objects.filter(api_key=_key).values_list("path", flat=True))
    assert paths == {"/api/v1/passports/psp_\ufffd", "/api/v1/passports/psp_\ufffd\ufffdx"}
    _key.refresh_from_db()
    assert _key.request_count == 2


def test_a_row_the_database_refuses_is_dropped_and_the_rest_written(key, caplog) -> None:
    """The flush's second line: a row that slipped past cleaning (here written straight into
    the buffer) is dropped and logged; the counts and every other row are written."""
    from tests.factories import WorkspaceFactory

    other, _token = apikey_create(
        workspace=WorkspaceFactory(slug="other-tenant"), name="Other", scopes=["passports:read"],
        environment="development",
        **by(),
    )
    buffer = UsageBuffer()
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    _record(buffer, other, at)
    buffer.record(key_id=key.pk, at=at, ip="10.0.0.1", method="GET", path="/ok", status=200,
                  latency_ms=1)
    # Past record()'s cleaning: a row every database refuses (a negative status breaks the
    # column's CHECK), with a NUL that PostgreSQL refuses too.
    buffer._keys[key.pk].recent.append((at, "GET", "/bad\x00", -1, None, 1))
    buffer._keys[key.pk].count += 1
    buffer._events += 1
    _record(buffer, other, at + timedelta(seconds=1))
    with caplog.at_level("ERROR", logger="gateway.usage"):
        assert buffer.flush() == 4
    assert buffer.flush() == 0
    key.refresh_from_db()
    other.refresh_from_db()
    assert (key.request_count, other.request_count) == (2, 2)
    assert KeyRequest.objects.filter(api_key=other).count() == 2
    assert list(KeyRequest.objects.filter(api_key=key).values_list("path", flat=True)) == ["/ok"]
    assert "dropped" in caplog.text
    assert "\x00" not in caplog.text and "/bad" not in caplog.text


class _Flushes:
    """Stands in for `UsageBuffer.flush` in the background flusher: notes when it is called, and
    after `last` calls parks the flusher (a daemon thread) for good, so it calls nothing more."""

    def __init__(self, last: int) -> None:
        self.at: list[float] = []
        self.last = last
        self.done = threading.Event()

    def __call__(self) -> int:
        self.at.append(time.monotonic())
        if len(self.at) >= self.last:
            self.done.set()
            threading.Event().wait()
        return 0


def test_the_flusher_waits_the_configured_interval(key, settings, monkeypatch) -> None:
    settings.GATEHOUSE_USAGE_FLUSH_SECONDS = 0.05
    buffer = UsageBuffer()  # autoflush on, as in a worker
    flushes = _Flushes(last=3)
    monkeypatch.setattr(buffer, "flush", flushes)
    started = time.monotonic()

    _record(buffer, key, datetime(2026, 11, 22, tzinfo=UTC))  # starts the flusher

    assert flushes.done.wait(5)
    assert flushes.at[0] - started >= 0.04
    assert all(b - a >= 0.04 for a, b in zip(flushes.at, flushes.at[1:], strict=False))


def test_a_long_interval_flushes_only_when_the_buffer_fills(key, settings, monkeypatch) -> None:
    settings.GATEHOUSE_USAGE_FLUSH_SECONDS = 60
    monkeypatch.setattr("gateway.usage.FLUSH_THRESHOLD", 2)
    buffer = UsageBuffer()
    flushes = _Flushes(last=1)
    monkeypatch.setattr(buffer, "flush", flushes)
    at = datetime(2026, 11, 22, tzinfo=UTC)

    _record(buffer, key, at)
    time.sleep(0.3)
    assert flushes.at == []  # the default 5 s, or 60 s, has not passed
    _record(buffer, key, at)  # the threshold wakes the flusher at once

    assert flushes.done.wait(5)
