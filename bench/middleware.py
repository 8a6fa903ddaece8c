"""The gateway without metering: the `apikey_unmetered` scenario's server only.

It is the product's `ApiGatewayMiddleware` with step 9 (`gateway.metering.meter_request`) and
its response half (`meter_response`) left out: no per-key rate limit, idempotency, daily budget
or usage recording. Everything else (authentication, scopes, headers) is the product's own
code, so the difference from the `apikey` scenario is what metering costs. `bench/settings.py`
puts it in `MIDDLEWARE` in the product's middleware's place when `BENCH_UNMETERED=1`.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from apikit.endpoints import Endpoint
from apikit.principal import Principal
from gateway.gate import Outcome
from gateway.metering import Gate
from gateway.middleware import ApiGatewayMiddleware


class UnmeteredGatewayMiddleware(ApiGatewayMiddleware):
    def admit(self, request: HttpRequest, endpoint: Endpoint, principal: Principal) -> Gate:
        self.attach(request, principal)
        refused = self.authorize(request, endpoint)
        return Gate(Outcome.ADMITTED if refused is None else Outcome.INSUFFICIENT_SCOPE, refused)

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        patch_vary_headers(response, ("Authorization",))
        response["X-Request-Id"] = request.request_id
        return response
