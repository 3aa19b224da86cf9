"""``POST /webhooks/gitlab/``: check the token, store, answer fast; the work happens in Celery.

Steps:

1. Refuse a declared body over ``GITLAB_WEBHOOK_MAX_BYTES`` (413) and a call whose ``X-Gitlab-Token``
   is missing or differs from ``GITLAB_WEBHOOK_SECRET`` (compared in constant time; 401), before
   reading the body. Refusals go to a bounded, rate-limited log (no body, no token) and nothing else
   happens.
2. Read the body in chunks, stopping past the limit (413).
3. Store the delivery under its ``X-Gitlab-Event-UUID``; a redelivery answers 200 and changes nothing.
4. After commit, queue processing and answer 202.
"""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from deployments.integrations.webhooks import receiving
from portal.client import client_ip

from .models import GitLabWebhookDelivery, GitLabWebhookRejection
from .tasks import enqueue_delivery

# Headers kept with a delivery; the token is never stored.
KEPT_HEADERS = (
    "X-Gitlab-Event",
    "X-Gitlab-Event-UUID",
    "X-Gitlab-Webhook-UUID",
    "X-Gitlab-Instance",
    "User-Agent",
    "Content-Type",
    "Content-Length",
)


def token_matches(secret: str, header: str | None) -> bool:
    """True when ``header`` equals ``secret`` (constant time); never true without a configured secret."""
    if not secret or not header:
        return False
    return hmac.compare_digest(secret.encode("utf-8"), header.encode("utf-8", "replace"))


def record_rejection(
    *, request: HttpRequest, reason: str, status: int, content_length: int | None = None
) -> GitLabWebhookRejection:
    """Log a refused call in the bounded, rate-limited rejection log (``receiving.record_rejection``)."""
    return receiving.record_rejection(
        GitLabWebhookRejection,
        interval_seconds=settings.GITLAB_WEBHOOK_REJECTION_INTERVAL_SECONDS,
        keep=settings.GITLAB_WEBHOOK_REJECTIONS_KEEP,
        remote_addr=client_ip(request),
        reason=reason[:64],
        event_uuid=request.headers.get("X-Gitlab-Event-UUID", "")[:100],
        event=request.headers.get("X-Gitlab-Event", "")[:64],
        user_agent=request.headers.get("User-Agent", "")[:200],
        content_length=content_length,
        status_code=status,
    )


def _reject(
    request: HttpRequest, *, reason: str, status: int, message: str, content_length: int | None = None
) -> JsonResponse:
    record_rejection(request=request, reason=reason, status=status, content_length=content_length)
    return receiving.refusal_response(
        source="GitLab",
        reason=reason,
        status=status,
        message=message,
        names=f"event {request.headers.get('X-Gitlab-Event', '-')[:64]}, "
        f"uuid {request.headers.get('X-Gitlab-Event-UUID', '-')[:100]}, from {client_ip(request)}",
    )


@csrf_exempt
@require_POST
def gitlab_webhook(request: HttpRequest) -> JsonResponse:
    limit = settings.GITLAB_WEBHOOK_MAX_BYTES
    declared = receiving.declared_length(request)
    too_large = f"The body is larger than {limit} bytes."
    if declared > limit:
        return _reject(request, reason="too_large", status=413, content_length=declared, message=too_large)
    header = request.headers.get("X-Gitlab-Token")
    if not token_matches(settings.GITLAB_WEBHOOK_SECRET, header):
        if not settings.GITLAB_WEBHOOK_SECRET:
            reason = "secret_not_configured"
        else:
            reason = "token_missing" if not header else "token_invalid"
        return _reject(
            request,
            reason=reason,
            status=401,
            content_length=declared or None,
            message="The X-Gitlab-Token header is missing or does not match.",
        )
    body = receiving.read_body(request, limit)
    if body is None:
        return _reject(request, reason="too_large", status=413, content_length=declared, message=too_large)
    event_uuid = request.headers.get("X-Gitlab-Event-UUID", "").strip()[:100]
    event = request.headers.get("X-Gitlab-Event", "").strip()[:64]
    if not event_uuid or not event:
        return _reject(
            request,
            reason="headers_missing",
            status=400,
            content_length=len(body),
            message="X-Gitlab-Event and X-Gitlab-Event-UUID are required.",
        )
    delivery = store_delivery(request=request, event_uuid=event_uuid, event=event, body=body)
    if delivery is None:
        return JsonResponse({"status": "duplicate", "event_uuid": event_uuid}, status=200)
    return JsonResponse({"status": "accepted", "event_uuid": event_uuid}, status=202)


def _summary(body: bytes) -> tuple[str, str]:
    """``object_kind`` and the project's ``path_with_namespace``, tolerating anything malformed."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if not isinstance(payload, dict):
        return "", ""
    kind = payload.get("object_kind") if isinstance(payload.get("object_kind"), str) else ""
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    path = project.get("path_with_namespace") if isinstance(project.get("path_with_namespace"), str) else ""
    return kind[:32], path[:255]


def store_delivery(*, request: HttpRequest, event_uuid: str, event: str, body: bytes) -> GitLabWebhookDelivery | None:
    """Store a delivery whose token matched and queue its processing after commit; None for a redelivery."""
    kind, path = _summary(body)
    return receiving.store_delivery(
        GitLabWebhookDelivery,
        body=body,
        headers=receiving.kept_headers(request, KEPT_HEADERS),
        enqueue=enqueue_delivery,
        event_uuid=event_uuid,
        event=event,
        object_kind=kind,
        project_path=path,
    )
