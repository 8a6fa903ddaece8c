"""The gateway's one gate (SPEC §5, §6), between authentication and the view.

`meter_request` runs once the principal is known. Its code states the order of checks once:
0. a key served from the per-process cache (`apikeys.keycache`) is confirmed: when its version
   markers moved, or cannot be confirmed, nothing is counted and the outcome is `STALE` (the
   middleware verifies the key again from the database and goes through the gate again);
1. the endpoint's scope (403 `insufficient_scope`): nothing is counted for a refused request;
2. the per-key rate limit (`rate_limited`, counted for every request of the key, replays too);
3. `Idempotency-Key`: claim the key, or answer with the stored response (a replay), 400, 409 or
   422 — so a replay is never counted against the daily budget;
4. the daily budget the endpoint declares (`@api_endpoint(budget=…)`; `quota_exceeded`;
   refused requests are not counted);
5. the credential's own caps, when it has any (SPEC §3; `workspaces.caps`): its daily request
   cap, then its credits (`quota_exceeded` naming the cap; `Retry-After` to the reset, none for
   a balance that never refills). Counted together with the budget, or not at all.

The counting is a backend's (`gateway.gate`): on Redis (`REDIS_URL`) the rate limit, the budget
and the cached key's markers are one script call; on the database one statement each. The
answer is a `Gate` with an `Outcome`, never an exception.

`meter_response` runs on the way out, whatever answered: it stores or releases the idempotency
claim, gives the budget unit back when the request was not served (status ≥ 400), sets the
`X-RateLimit-*` headers for the budget that applies (else for the key's rate limit), and records
the request in the key's usage buffer (memory only; `gateway.usage` flushes in batches).

If the counters' backing service is unreachable, a counted request is refused with 503
`service_unavailable` (`UNAVAILABLE`) and any claim is released.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apikit.endpoints import Endpoint
from apikit.errors import error_response, service_unavailable
from audit.services import audit_chained_at_end
from core.addresses import client_ip
from core.counters import CounterUnavailable, counter_value
from core.redis import using_redis
from workspaces.caps import CapWindow, cap_allowance, cap_windows
from workspaces.quotas import (
    Allowance,
    Budget,
    allowance_give_back,
    budget_allowance,
    budget_counter_key,
    budget_limit,
    next_utc_midnight,
    rate_limit_allowance,
    rate_limit_window,
)

from .gate import Counters, DatabaseCounters, Limit, Outcome, RedisCounters
from .idempotency import (
    IdempotencyError,
    idempotency_claim,
    idempotency_complete,
    idempotency_key_from,
    idempotency_release,
    idempotency_storable,
    request_fingerprint,
)
from .models import IdempotencyRecord
from .usage import usage_record

logger = logging.getLogger("apikit.requests")


@dataclass(slots=True)
class Metering:
    now: datetime
    started: float
    budget_kind: Budget | None = None  # what the endpoint declares
    rate: Allowance | None = None
    budget: Allowance | None = None
    caps: list[Allowance] | None = None  # the credential's own (step 5), when it has any
    claim: IdempotencyRecord | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Gate:
    """The gate's answer: `response` refuses (or replays) the request; None lets the view run.
    `STALE` has no response: the middleware verifies the key again."""

    outcome: Outcome
    response: HttpResponse | None = None


class _Idempotency:
    """Step 3, run by the backend at most once: claim, replay or refusal."""

    def __init__(self, request: HttpRequest, state: Metering) -> None:
        self.request = request
        self.state = state
        self.ran = False
        self.answer: HttpResponse | IdempotencyError | None = None

    def run(self) -> bool:
        if not self.ran:
            self.ran = True
            self.answer = self._claim()
        return self.answer is None

    def _claim(self) -> HttpResponse | IdempotencyError | None:
        request, state = self.request, self.state
        try:
            idempotency_key = idempotency_key_from(request)
            if idempotency_key is None:
                return None
            claimed = idempotency_claim(
                workspace_id=request.workspace.pk,
                key=idempotency_key,
                fingerprint=request_fingerprint(request),
                now=state.now,
            )
        except IdempotencyError as exc:
            return exc
        if isinstance(claimed, HttpResponse):
            return claimed
        state.claim = claimed
        return None


def counters_for(now: datetime) -> Counters:
    return RedisCounters(now) if using_redis() else DatabaseCounters()


def meter_request(
    request: HttpRequest, endpoint: Endpoint, *, scope_refusal: HttpResponse | None = None
) -> Gate:
    """The gate: the checks before the view, in the order of the module docstring.

    `scope_refusal` is the gateway's 403 for a missing scope: nothing is counted for it.
    """
    now = timezone.now()
    state = Metering(
        now=now, started=getattr(request, "started", time.perf_counter()),
        budget_kind=endpoint.budget,
    )
    request.metering = state
    counting = scope_refusal is None
    key = request.principal.api_key
    per_minute = key.rate_limit_per_minute if key is not None and counting else None
    rate = None
    if per_minute:
        rate_key, rate_reset = rate_limit_window(key.pk, now)
        rate = Limit(rate_key, per_minute, rate_reset + timedelta(minutes=1))
    limit = budget_limit(request.workspace.plan, endpoint.budget) if endpoint.budget else None
    budget = None
    if counting and limit is not None:
        budget = Limit(
            budget_counter_key(request.workspace.pk, endpoint.budget, now), limit,
            next_utc_midnight(now) + timedelta(hours=1),
        )
    caps = request.principal.caps if counting else None
    windows: list[CapWindow] = cap_windows(caps, now) if caps is not None else []
    idempotency = _Idempotency(request, state) if counting else None
    try:
        taken = counters_for(now).take(
            versions=request.principal.versions, rate=rate, idempotency=idempotency,
            budget=budget, caps=[Limit(w.key, w.limit, w.expires_at) for w in windows],
            lease=request.principal.lease,
        )
    except CounterUnavailable:
        _release(state)
        return Gate(Outcome.UNAVAILABLE, service_unavailable(request))
    # 0. the cached key
    if taken.outcome is Outcome.STALE:
        _release(state)  # nothing was counted; the key is read again
        return Gate(Outcome.STALE)
    # 1. scope
    if scope_refusal is not None:
        return Gate(Outcome.INSUFFICIENT_SCOPE, scope_refusal)
    # 2. the key's rate limit
    if rate is not None:
        state.rate = rate_limit_allowance(
            admitted=taken.outcome is not Outcome.RATE_LIMITED, per_minute=per_minute,
            used=taken.rate, counter_key=rate.key, reset_at=rate_reset, now=now,
        )
        if taken.outcome is Outcome.RATE_LIMITED:
            _release(state)  # a backend may have claimed first; a refused request keeps nothing
            return Gate(Outcome.RATE_LIMITED, _too_many(request, "rate_limited", state.rate, now))
    # 3. Idempotency-Key
    answer = idempotency.answer if idempotency is not None else None
    if isinstance(answer, HttpResponse):
        state.replayed = True
        if budget is not None and taken.budget is not None:  # read by the same round trip
            state.budget = Allowance(True, limit, taken.budget, next_utc_midnight(now), budget.key)
        return Gate(Outcome.REPLAYED, answer)
    if isinstance(answer, IdempotencyError):
        return Gate(Outcome.IDEMPOTENCY_REFUSED, error_response(
            request, answer.status, answer.error, answer.message,
            **({"fields": {"Idempotency-Key": answer.message}} if answer.status == 400 else {}),
        ))
    # 4. the daily budget
    if budget is not None:
        state.budget = budget_allowance(
            admitted=taken.outcome is not Outcome.OVER_BUDGET, budget=endpoint.budget,
            limit=limit, used=taken.budget or 0, counter_key=budget.key, now=now,
        )
        if taken.outcome is Outcome.OVER_BUDGET:
            return Gate(
                Outcome.OVER_BUDGET, _too_many(request, "quota_exceeded", state.budget, now)
            )
    # 5. the credential's own caps
    if windows:
        refused = taken.refused_cap if taken.outcome is Outcome.OVER_CAP else None
        state.caps = [
            cap_allowance(
                window, caps, admitted=index != refused,
                used=taken.caps[index] if index < len(taken.caps) else 0, now=now,
            )
            for index, window in enumerate(windows)
        ]
        if refused is not None:
            # Counted only all together: neither the budget nor another cap was counted, so
            # nothing is given back and the headers show the cap that refused.
            state.budget = None
            state.caps = [a for a in state.caps if not a.admitted]
            return Gate(
                Outcome.OVER_CAP, _too_many(request, "quota_exceeded", state.caps[0], now)
            )
    return Gate(Outcome.ADMITTED)


def one_transaction_writes() -> bool:
    """Whether an idempotent write runs in one transaction (`serve_claimed`): on a database that
    locks rows (PostgreSQL). SQLite has one writer for the whole file, taken at `BEGIN`
    (`transaction_mode: IMMEDIATE`): a transaction held across the view would make a concurrent
    duplicate wait for the whole view instead of finding the claim and answering 409 at once, so
    there the view's services commit on their own, as before."""
    return connection.features.has_select_for_update


def serve_claimed(request: HttpRequest, answer: Callable[[], HttpResponse]) -> HttpResponse:
    """An idempotent write's second and last commit (the claim was the first): the view's change,
    its audit events and the response stored for replays, in one transaction.

    The audit events take their chain positions at the end (`audit_chained_at_end`), after the
    response is stored, so the chain's head row is locked only for the transaction's last
    statements. A response that is not stored (5xx, 429, streaming) rolls the change back as well:
    the claim is then released on the way out (`meter_response`), nothing was done and the client
    may retry with the same key. An exception from the view rolls everything back too.
    `ApiGatewayMiddleware` sets this as `request.api_view_runner` when the gate claimed a key.
    """
    state: Metering = request.metering
    with transaction.atomic(), audit_chained_at_end():
        response = answer()
        if state.claim is not None and idempotency_storable(response):
            idempotency_complete(state.claim, response)
            state.claim = None  # stored: nothing left for meter_response
        else:
            transaction.set_rollback(True)
    return response


def _release(state: Metering) -> None:
    if state.claim is not None:
        idempotency_release(state.claim)
        state.claim = None


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
            if state.caps:
                state.caps = [allowance_give_back(a) for a in state.caps]
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
                # An MCP tool call is recorded under its tool (`mcp_server` sets `usage_path`).
                path=getattr(request, "usage_path", None) or request.path_info,
                status=response.status_code,
                latency_ms=int((time.perf_counter() - state.started) * 1000),
            )


def _rate_limit_headers(request: HttpRequest, response: HttpResponse, state: Metering) -> None:
    allowance = state.budget
    if allowance is None and state.replayed:
        # A replay consumed nothing; show where the budget stands.
        budget = state.budget_kind
        limit = budget_limit(request.workspace.plan, budget) if budget else None
        if limit is not None:
            key = budget_counter_key(request.workspace.pk, budget, state.now)
            used = counter_value(key)
            allowance = Allowance(True, limit, used, next_utc_midnight(state.now), key)
    if state.caps:  # the credential's own cap, when it is the tighter limit
        allowance = min(
            [a for a in (allowance, *state.caps) if a is not None], key=lambda a: a.remaining
        )
    allowance = allowance or state.rate
    if allowance is None:
        return
    response["X-RateLimit-Limit"] = str(allowance.limit)
    response["X-RateLimit-Remaining"] = str(allowance.remaining)
    if allowance.reset_at is not None:  # a balance that never refills has no reset
        response["X-RateLimit-Reset"] = str(int(allowance.reset_at.timestamp()))


def _too_many(
    request: HttpRequest, error: str, allowance: Allowance, now: datetime
) -> HttpResponse:
    retry_after = allowance.retry_after(now)
    return error_response(
        request, HTTPStatus.TOO_MANY_REQUESTS, error, allowance.message,
        # None: a balance that never refills; waiting does not help, so no Retry-After
        headers={"Retry-After": str(retry_after)} if retry_after is not None else {},
    )


