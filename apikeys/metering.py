"""The gateway's metering steps (SPEC §5, §6), between scope checks and the view.

`meter_request` runs once the principal is known and the scope granted, in this order:
1. the per-key rate limit (`rate_limited`, counted for every request of the key, replays too);
2. `Idempotency-Key`: claim the key, or answer with the stored response (a replay), 409 or 422 —
   so a replay is never counted against the daily budget;
3. the daily budget that applies (`quota_exceeded`; refused requests are not counted).

`meter_response` runs on the way out, whatever answered: it stores or releases the idempotency
claim, gives the budget unit back when the request was not served (status ≥ 400), sets the
`X-RateLimit-*` headers for the budget that applies (else for the key's rate limit), and records
the request in the key's usage buffer (memory only; `apikeys.usage` flushes in batches).

If the counters' backing service (Redis, or the database) is unreachable, the request is refused
with 503 `service_unavailable` before anything is done, and any claim is released.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .counters import CounterUnavailable, counter_value
from .errors import error_response, service_unavailable
from .failed_auth import client_ip
from .idempotency import (
    IdempotencyError,
    idempotency_claim,
    idempotency_complete,
    idempotency_key_from,
    request_fingerprint,
)
from .models import IdempotencyRecord
from .quotas import (
    Allowance,
    allowance_give_back,
    budget_counter_key,
    budget_for,
    budget_limit,
    next_utc_midnight,
    quota_consume,
    rate_limit_consume,
)
from .usage import usage_record


@dataclass(slots=True)
class Metering:
    now: datetime
    started: float
    rate: Allowance | None = None
    budget: Allowance | None = None
    claim: IdempotencyRecord | None = None
    replayed: bool = False


def meter_request(request: HttpRequest) -> HttpResponse | None:
    """The metering steps before the view; a response refuses (or replays) the request."""
    state = Metering(now=timezone.now(), started=getattr(request, "started", time.perf_counter()))
    request.metering = state
    principal = request.principal
    key = principal.api_key
    try:
        if key is not None and key.rate_limit_per_minute:
            state.rate = rate_limit_consume(
                key_id=key.pk, per_minute=key.rate_limit_per_minute, now=state.now
            )
            if not state.rate.admitted:
                return _too_many(request, "rate_limited", state.rate, state.now)

        idempotency_key = idempotency_key_from(request)
        if idempotency_key is not None:
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
    except IdempotencyError as exc:
        return error_response(
            request, exc.status, exc.error, exc.message,
            **({"fields": {"Idempotency-Key": exc.message}} if exc.status == 400 else {}),
        )
    except CounterUnavailable:
        return service_unavailable(request)
    return None


def meter_response(request: HttpRequest, response: HttpResponse) -> None:
    state: Metering | None = getattr(request, "metering", None)
    if state is None:
        return
    served = response.status_code < HTTPStatus.BAD_REQUEST
    try:
        if state.claim is not None:
            idempotency_complete(state.claim, response)
        if not served and not state.replayed:
            allowance_give_back(state.budget)
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


