"""The gateway's metering steps (SPEC §5, §6), between scope checks and the view.

`meter_request` runs once the principal is known, and does, in this order:
1. the per-key rate limit (`rate_limited`, counted for every request of the key, replays too);
2. `Idempotency-Key`: claim the key, or answer with the stored response (a replay), 409 or 422 —
   so a replay is never counted against the daily budget;
3. the daily budget that applies (`quota_exceeded`; refused requests are not counted).

On Redis (`REDIS_URL`), the rate limit and the budget are one script
call (`core.counters.gate_take`), made after the idempotency claim: one round trip instead of
three (docs/PERFORMANCE.md). On the database backend they are one statement each.

`meter_response` runs on the way out, whatever answered: it stores or releases the idempotency
claim, gives the budget unit back when the request was not served (status ≥ 400), sets the
`X-RateLimit-*` headers for the budget that applies (else for the key's rate limit), and records
the request in the key's usage buffer (memory only; `gateway.usage` flushes in batches).

If the counters' backing service is unreachable, a counted request is refused with 503
`service_unavailable` before anything is done, and any claim is released.

A principal served from the per-process key cache (`apikeys.keycache`) is confirmed by the same
script call: when its version markers moved, or Redis cannot confirm them, nothing is counted,
any claim is released and `StalePrincipal` sends the gateway back to the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apikeys.keycache import keycache_distrust
from apikit.errors import error_response, service_unavailable
from apikit.principal import StalePrincipal
from core.addresses import client_ip
from core.counters import CounterUnavailable, counter_value
from core.redis import using_redis
from workspaces.quotas import (
    Allowance,
    allowance_give_back,
    budget_allowance,
    budget_counter_key,
    budget_for,
    budget_limit,
    next_utc_midnight,
    quota_consume,
    rate_limit_allowance,
    rate_limit_consume,
    rate_limit_window,
)

from .gate import STALE, GateResult, gate_take
from .idempotency import (
    IdempotencyError,
    idempotency_claim,
    idempotency_complete,
    idempotency_key_from,
    idempotency_release,
    request_fingerprint,
)
from .models import IdempotencyRecord
from .usage import usage_record

logger = logging.getLogger("apikit.requests")


@dataclass(slots=True)
class Metering:
    now: datetime
    started: float
    rate: Allowance | None = None
    budget: Allowance | None = None
    claim: IdempotencyRecord | None = None
    replayed: bool = False


def meter_request(
    request: HttpRequest, *, scope_refusal: HttpResponse | None = None
) -> HttpResponse | None:
    """The metering steps before the view; a response refuses (or replays) the request.

    `scope_refusal` is the gateway's 403 for a missing scope: nothing is counted for it.
    """
    state = Metering(now=timezone.now(), started=getattr(request, "started", time.perf_counter()))
    request.metering = state
    try:
        if using_redis():
            return _meter_in_one_round_trip(request, state, scope_refusal)
        if scope_refusal is not None:
            return scope_refusal
        return _meter_step_by_step(request, state)
    except IdempotencyError as exc:
        return error_response(
            request, exc.status, exc.error, exc.message,
            **({"fields": {"Idempotency-Key": exc.message}} if exc.status == 400 else {}),
        )
    except CounterUnavailable:
        return service_unavailable(request)


def _claim(request: HttpRequest, state: Metering) -> HttpResponse | None:
    """Claim the request's Idempotency-Key; the stored response when it is a replay."""
    idempotency_key = idempotency_key_from(request)
    if idempotency_key is None:
        return None
    claimed = idempotency_claim(
        workspace_id=request.workspace.pk,
        key=idempotency_key,
        fingerprint=request_fingerprint(request),
        now=state.now,
    )
    if isinstance(claimed, HttpResponse):
        state.replayed = True
        return claimed
    state.claim = claimed
    return None


def _meter_step_by_step(request: HttpRequest, state: Metering) -> HttpResponse | None:
    """The database backend: rate limit, idempotency, budget, one statement each."""
    key = request.principal.api_key
    if key is not None and key.rate_limit_per_minute:
        state.rate = rate_limit_consume(
            key_id=key.pk, per_minute=key.rate_limit_per_minute, now=state.now
        )
        if not state.rate.admitted:
            return _too_many(request, "rate_limited", state.rate, state.now)
    replay = _claim(request, state)
    if replay is not None:
        return replay
    budget = budget_for(request.method, request.path_info)
    if budget is not None:
        state.budget = quota_consume(
            workspace_id=request.workspace.pk,
            plan=request.workspace.plan,
            budget=budget,
            now=state.now,
        )
        if state.budget is not None and not state.budget.admitted:
            return _too_many(request, "quota_exceeded", state.budget, state.now)
    return None


def _meter_in_one_round_trip(
    request: HttpRequest, state: Metering, scope_refusal: HttpResponse | None
) -> HttpResponse | None:
    """Redis: the idempotency claim (database), then the key's rate limit and the daily budget
    in one script call (`gate_take`) instead of two calls."""
    replay = None if scope_refusal is not None else _claim(request, state)
    key = request.principal.api_key
    per_minute = key.rate_limit_per_minute if key is not None and scope_refusal is None else None
    rate_key, rate_reset = rate_limit_window(key.pk, state.now) if per_minute else (None, None)
    budget = budget_for(request.method, request.path_info)
    limit = budget_limit(request.workspace.plan, budget) if budget is not None else None
    counts_budget = limit is not None and replay is None and scope_refusal is None
    budget_key = (
        budget_counter_key(request.workspace.pk, budget, state.now) if counts_budget else None
    )
    versions = request.principal.versions
    try:
        gate = gate_take(
            rate_key=rate_key,
            rate_limit=per_minute or 0,
            rate_expires_at=rate_reset + timedelta(minutes=1) if rate_reset else None,
            budget_key=budget_key,
            budget_limit=limit or 0,
            budget_expires_at=next_utc_midnight(state.now) + timedelta(hours=1),
            now=state.now,
            versions=versions,
        )
    except CounterUnavailable:
        keycache_distrust()  # bumps may be lost while Redis is unreachable: cache nothing old
        if versions is not None:
            _stale(state)  # a cached key that cannot be confirmed is read again
        if rate_key is not None or budget_key is not None:
            raise  # a counted request is not served uncounted: 503
        gate = GateResult(0)  # nothing to count or confirm was asked
    if gate.outcome == STALE:
        _stale(state)
    if rate_key is not None:
        state.rate = rate_limit_allowance(
            admitted=gate.outcome != 2, per_minute=per_minute, used=gate.rate,
            counter_key=rate_key, reset_at=rate_reset, now=state.now,
        )
        if gate.outcome == 2:
            return _too_many(request, "rate_limited", state.rate, state.now)
    if scope_refusal is not None:
        return scope_refusal
    if replay is not None:
        return replay
    if budget_key is not None:
        state.budget = budget_allowance(
            admitted=gate.outcome != 3, budget=budget, limit=limit, used=gate.budget,
            counter_key=budget_key, now=state.now,
        )
        if gate.outcome == 3:
            return _too_many(request, "quota_exceeded", state.budget, state.now)
    return None


def _stale(state: Metering) -> None:
    """Undo this attempt (nothing was counted) and send the gateway back to the database."""
    if state.claim is not None:
        idempotency_release(state.claim)
        state.claim = None
    raise StalePrincipal


def meter_response(request: HttpRequest, response: HttpResponse) -> None:
    state: Metering | None = getattr(request, "metering", None)
    if state is None:
        return
    served = response.status_code < HTTPStatus.BAD_REQUEST
    try:
        if state.claim is not None:
            idempotency_complete(state.claim, response)
        if not served and not state.replayed:
            state.budget = allowance_give_back(state.budget)
        _rate_limit_headers(request, response, state)
    except CounterUnavailable:
        pass  # the response is already decided; a unit not given back is the safe side
    finally:
        key = request.principal.api_key if request.principal is not None else None
        if key is not None:
            usage_record(
                key_id=key.pk,
                at=state.now,
                ip=client_ip(request),
                method=request.method or "",
                path=request.path_info,
                status=response.status_code,
                latency_ms=int((time.perf_counter() - state.started) * 1000),
            )


def _rate_limit_headers(request: HttpRequest, response: HttpResponse, state: Metering) -> None:
    allowance = state.budget
    if allowance is None and state.replayed:
        # A replay consumed nothing; show where the budget stands.
        budget = budget_for(request.method, request.path_info)
        limit = budget_limit(request.workspace.plan, budget) if budget else None
        if limit is not None:
            key = budget_counter_key(request.workspace.pk, budget, state.now)
            used = counter_value(key)
            allowance = Allowance(True, limit, used, next_utc_midnight(state.now), key)
    allowance = allowance or state.rate
    if allowance is None:
        return
    response["X-RateLimit-Limit"] = str(allowance.limit)
    response["X-RateLimit-Remaining"] = str(allowance.remaining)
    response["X-RateLimit-Reset"] = str(int(allowance.reset_at.timestamp()))


def _too_many(
    request: HttpRequest, error: str, allowance: Allowance, now: datetime
) -> HttpResponse:
    return error_response(
        request, HTTPStatus.TOO_MANY_REQUESTS, error, allowance.message,
        headers={"Retry-After": str(allowance.retry_after(now))},
    )


