import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from core.counters import counter_give_back, counter_take, counter_value
from tests.clock import day_ahead
from tests.factories import plan_named
from tests.metering import quota_consume, rate_limit_consume
from workspaces.quotas import Budget, next_utc_midnight


def _race(n_threads: int, attempts: int, fn) -> list:
    results: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)
    per_thread = attempts // n_threads

    def worker() -> None:
        barrier.wait()
        try:
            for _ in range(per_thread):
                r = fn()
                with lock:
                    results.append(r)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_counter_admits_exactly_the_limit_under_racing_threads() -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    results = _race(16, 160, lambda: counter_take("race", limit=100, expires_at=expires))
    assert sum(r.admitted for r in results) == 100
    assert sum(not r.admitted for r in results) == 60
    assert counter_value("race") == 100  # refused calls were not counted


@pytest.mark.django_db(transaction=True)
def test_give_back_frees_a_unit_and_never_goes_negative() -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    assert counter_take("k", limit=1, expires_at=expires).admitted
    assert not counter_take("k", limit=1, expires_at=expires).admitted
    counter_give_back("k")
    assert counter_value("k") == 0
    counter_give_back("k")
    assert counter_value("k") == 0
    assert counter_take("k", limit=1, expires_at=expires).admitted


@pytest.mark.django_db(transaction=True)
def test_daily_budget_resets_at_utc_midnight(workspace) -> None:
    free = plan_named("free")  # 100 writes/day
    with time_machine.travel(day_ahead(0, 23, 59, 30), tick=False):
        now = datetime.now(UTC)
        for _ in range(100):
            assert quota_consume(workspace_id=workspace.pk, plan=free, budget=Budget.WRITES,
                                 now=now).admitted
        refused = quota_consume(workspace_id=workspace.pk, plan=free, budget=Budget.WRITES,
                                now=now)
        assert not refused.admitted
        assert refused.retry_after(now) == 30
        assert refused.message == (
            "API rate limit: 100 writes/day via /api/v1. Currently 100 today; requested 1. "
            "Retry tomorrow (UTC) or upgrade your plan."
        )
    with time_machine.travel(day_ahead(1, 0, 0, 1), tick=False):
        fresh = quota_consume(workspace_id=workspace.pk, plan=free, budget=Budget.WRITES,
                              now=datetime.now(UTC))
        assert fresh.admitted and fresh.used == 1 and fresh.remaining == 99


@pytest.mark.django_db
def test_unlimited_plan_counts_nothing(workspace) -> None:
    pro = plan_named("pro")
    assert quota_consume(workspace_id=workspace.pk, plan=pro, budget=Budget.WRITES,
                         now=datetime.now(UTC)) is None


@pytest.mark.django_db(transaction=True)
def test_rate_limit_window_is_per_minute() -> None:
    t0 = day_ahead(0, 12, 0, 10)
    assert rate_limit_consume(key_id=1, per_minute=2, now=t0).admitted
    assert rate_limit_consume(key_id=1, per_minute=2, now=t0).admitted
    refused = rate_limit_consume(key_id=1, per_minute=2, now=t0)
    assert not refused.admitted
    assert refused.retry_after(t0) == 50
    assert rate_limit_consume(key_id=2, per_minute=2, now=t0).admitted  # per key
    assert rate_limit_consume(key_id=1, per_minute=2, now=t0 + timedelta(seconds=50)).admitted


def test_next_utc_midnight() -> None:
    assert next_utc_midnight(datetime(2026, 1, 31, 5)) == datetime(
        2026, 2, 1, tzinfo=UTC
    )
