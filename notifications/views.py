"""Settings → Notifications (email preferences, recent events) and Settings → Webhooks."""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.context import Actor, RequestContext
from core.sealing import unseal
from workspaces.permissions import member_can, workspace_view
from workspaces.roles import Action
from workspaces.sudo import sudo_required

from . import selectors
from .forms import EmailPreferencesForm, WebhookEndpointEditForm, WebhookEndpointForm
from .kinds import EMAIL_TYPES
from .models import EmailOptOut, WebhookDelivery, WebhookEndpoint
from .services import (
    RECIPIENT_ROLES,
    SEAL_PURPOSE,
    email_preferences_update,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_secret_rotate,
    webhook_test_send,
)

REVEAL_KEY = "notifications:reveal"


def _form_errors(form: object, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
    else:
        form.add_error(None, exc)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.VIEW_DASHBOARD)
def notification_settings(request: HttpRequest) -> HttpResponse:
    ws = request.workspace
    opted_out = set(
        EmailOptOut.objects.filter(user=request.user, workspace=ws)
        .values_list("event_type", flat=True)
    )
    initial = {"email": [t.name for t in EMAIL_TYPES if t.name not in opted_out]}
    form = EmailPreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        chosen = set(form.cleaned_data["email"])
        email_preferences_update(user=request.user, workspace=ws,
                                 opted_out={t.name for t in EMAIL_TYPES} - chosen)
        messages.success(request, "Notification preferences saved.")
        return redirect("notifications:settings", slug=ws.slug)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    context = {
        "form": form,
        "receives_email": request.membership.role in RECIPIENT_ROLES,
        "events": selectors.recent_events(ws) if member_can(request, Action.MANAGE_KEYS) else [],
    }
    return render(request, "notifications/settings.html", context, status=status)


def _endpoint(request: HttpRequest, endpoint_id: str) -> WebhookEndpoint:
    endpoint = selectors.endpoints_for(request.workspace).filter(public_id=endpoint_id).first()
    if endpoint is None:
        raise Http404
    return endpoint


def _by(request: HttpRequest) -> dict:
    return {"actor": Actor.for_user(request.user), "context": RequestContext.from_request(request)}


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
@sudo_required
def webhook_list(request: HttpRequest) -> HttpResponse:
    ws = request.workspace
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, _secret = webhook_endpoint_create(workspace=ws, **form.cleaned_data,
                                                        **_by(request))
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            # The secret is shown once, on the page this redirects to (read back from its seal).
            request.session[REVEAL_KEY] = endpoint.public_id
            messages.success(request, "Webhook endpoint created.")
            return redirect("notifications:webhook_detail", slug=ws.slug,
                            endpoint_id=endpoint.public_id)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    return render(request, "notifications/webhook_list.html",
                  {"form": form, "endpoints": selectors.endpoints_for(ws)}, status=status)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
@sudo_required  # a changed URL sends the workspace's events elsewhere
def webhook_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    initial = {"url": endpoint.url, "description": endpoint.description,
               "event_types": endpoint.event_types, "enabled": endpoint.enabled}
    form = WebhookEndpointEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            webhook_endpoint_update(endpoint=endpoint, **form.cleaned_data, **_by(request))
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Webhook endpoint saved.")
            return redirect("notifications:webhook_detail", slug=request.workspace.slug,
                            endpoint_id=endpoint.public_id)
    secret = None
    if request.session.get(REVEAL_KEY) == endpoint.public_id:
        del request.session[REVEAL_KEY]
        secret = unseal(endpoint.sealed_secret, purpose=SEAL_PURPOSE)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    response = render(request, "notifications/webhook_detail.html", {
        "endpoint": endpoint, "form": form, "secret": secret,
        "deliveries": selectors.endpoint_deliveries(endpoint),
    }, status=status)
    if secret:
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@workspace_view(Action.MANAGE_KEYS)
@sudo_required
def webhook_rotate(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    webhook_secret_rotate(endpoint=endpoint, **_by(request))
    request.session[REVEAL_KEY] = endpoint.public_id
    messages.success(request, "New signing secret made; the old one keeps signing for 24 hours.")
    return redirect("notifications:webhook_detail", slug=request.workspace.slug,
                    endpoint_id=endpoint.public_id)


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def webhook_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    webhook_endpoint_delete(endpoint=_endpoint(request, endpoint_id), **_by(request))
    messages.success(request, "Webhook endpoint deleted.")
    return redirect("notifications:webhooks", slug=request.workspace.slug)


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def webhook_test(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    if not endpoint.enabled:
        messages.error(request, "Turn the endpoint on before sending it a test event.")
    else:
        event = webhook_test_send(endpoint=endpoint)
        messages.success(request, f"Test event {event.public_id} queued.")
    return redirect("notifications:webhook_detail", slug=request.workspace.slug,
                    endpoint_id=endpoint.public_id)


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def webhook_resend(request: HttpRequest, endpoint_id: str, delivery_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint, public_id=delivery_id).first()
    if delivery is None:
        raise Http404
    if webhook_delivery_resend(delivery=delivery).queued:
        messages.success(request, "Delivery queued again.")
    else:
        messages.error(request, "Not queued: it is being sent right now, or the endpoint is off.")
    return redirect("notifications:webhook_detail", slug=request.workspace.slug,
                    endpoint_id=endpoint.public_id)
