"""Expired authorization codes are deleted within a minute, not at the next `prune`.

An authorization code (DOT's `Grant` row, which stores the code itself) lives 60 seconds; one that
is never exchanged would otherwise stay in the database until `manage.py prune` runs. There is no
background worker yet, so each process that issues a code schedules the sweep itself: issuing a
code notes its expiry, rounded up to the next `BUCKET_SECONDS`, and a per-process daemon thread
(started on the first code, like the usage flusher) wakes at each noted time and deletes every
expired code — anyone's, not only its own — in bounded batches. Idle, it sleeps on an event and
costs nothing; under load the rounding keeps it to at most one sweep per bucket.

Why not an opportunistic sweep on the OAuth endpoints: that deletes a code only when a later OAuth
request happens to arrive, so a code issued in a quiet hour would stay for that hour. Here the
process that issued the code deletes it; only if that process dies before the code expires does
the code wait for the next sweep anywhere (the next code issued on any process) or `prune`.

The sweep also forgets used-code records (oauth.models.UsedAuthorizationCode) and issued access
tokens (oauth.models.IssuedAccessToken) past their retention.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from datetime import datetime

from django.db import connection
from django.utils import timezone
from oauth2_provider.models import get_grant_model

from .models import (
    ISSUED_TOKEN_RETENTION,
    USED_CODE_RETENTION,
    IssuedAccessToken,
    UsedAuthorizationCode,
)

log = logging.getLogger(__name__)

BUCKET_SECONDS = 10
BATCH = 500
MAX_BATCHES = 20  # per sweep; a sweep that hits the bound schedules the next bucket


def expired_codes_delete(*, now: datetime | None = None, batch: int = BATCH) -> int:
    """Delete expired authorization codes (at most `batch * MAX_BATCHES`); returns how many."""
    now = now or timezone.now()
    Grant = get_grant_model()
    deleted = 0
    for _ in range(MAX_BATCHES):
        ids = list(Grant.objects.filter(expires__lt=now).values_list("pk", flat=True)[:batch])
        if not ids:
            break
        _total, by_model = Grant.objects.filter(pk__in=ids, expires__lt=now).delete()
        deleted += by_model.get(Grant._meta.label, 0)
        if len(ids) < batch:
            break
    UsedAuthorizationCode.objects.filter(used_at__lt=now - USED_CODE_RETENTION).delete()
    issued_tokens_delete(now=now, batch=batch)
    return deleted


def issued_tokens_delete(*, now: datetime | None = None, batch: int = BATCH) -> int:
    """Forget issued access tokens that expired `ISSUED_TOKEN_RETENTION` ago (bounded, like the
    codes); such a token is then unknown to the gateway. Returns how many."""
    cutoff = (now or timezone.now()) - ISSUED_TOKEN_RETENTION
    deleted = 0
    for _ in range(MAX_BATCHES):
        expired = IssuedAccessToken.objects.filter(expires_at__lt=cutoff)
        ids = list(expired.values_list("pk", flat=True)[:batch])
        if not ids:
            break
        deleted += IssuedAccessToken.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch:
            break
    return deleted


class ExpiredCodeSweeper:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: set[float] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        # The test suite turns it off (tests/conftest.py); the test of the sweep turns it on.
        self.enabled = True

    def schedule(self, expires: datetime) -> None:
        """Note that a code expiring at `expires` must be deleted soon after."""
        if not self.enabled:
            return
        due = math.ceil(expires.timestamp() / BUCKET_SECONDS) * BUCKET_SECONDS + 1
        with self._lock:
            self._due.add(due)
        self._ensure_thread()
        self._wake.set()

    def _ensure_thread(self) -> None:
        # One sweeper per process; a forked worker (gunicorn) starts its own.
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="gatehouse-code-sweep", daemon=True
            )
            self._thread.start()

    def _next_due(self) -> float | None:
        with self._lock:
            return min(self._due) if self._due else None

    def _run(self) -> None:
        while True:
            due = self._next_due()
            timeout = None if due is None else max(0.0, due - time.time())
            if self._wake.wait(timeout):
                self._wake.clear()
                continue  # a new deadline arrived: recompute
            now = time.time()
            with self._lock:
                self._due = {d for d in self._due if d > now}
            if not self.enabled:
                continue
            try:
                deleted = expired_codes_delete()
                if deleted >= BATCH * MAX_BATCHES:  # bounded: come back for the rest
                    with self._lock:
                        self._due.add(now + BUCKET_SECONDS)
            except Exception:  # keep the sweeper alive; `prune` remains the backstop
                log.exception("Sweeping expired authorization codes failed; will retry.")
                with self._lock:
                    self._due.add(now + BUCKET_SECONDS)
            finally:
                connection.close()  # this thread's own; an idle sweeper holds none


code_sweeper = ExpiredCodeSweeper()
