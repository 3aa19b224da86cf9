"""``POST /webhooks/github/``: verify, store, answer fast; the work happens in Celery.

Steps:

1. Refuse a declared body over ``GITHUB_WEBHOOK_MAX_BYTES`` (413) and a call without a signature
   (or without a configured secret, 401) before reading a byte of the body; read the rest in chunks,
   stopping past the limit.
2. Verify ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the webhook secret) in
   constant time. Missing, malformed or wrong → 401; the legacy SHA-1 header alone is not
   accepted. The rejection goes to a bounded, rate-limited log (no body, no secret, not the audit
   trail: anyone can knock) and nothing else happens.
3. Store the delivery under its unique ``X-GitHub-Delivery`` id; a redelivery answers 200 and
   changes nothing.
4. After commit, queue processing and answer 202.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from deployments.integrations.webhooks import receiving
from portal.client import client_ip

from .models import GitHubWebhookDelivery, GitHubWebhookRejection
from .tasks import enqueue_delivery

SIGNATURE_HEADER = "HTTP_X_HUB_SIGNATURE_256"
# Headers kept with a delivery; signatures and anything secret-looking are not stored.
KEPT_HEADERS = (
    "X-GitHub-Delivery",
    "X-GitHub-Event",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    "User-Agent",
    "Content-Type",
    "Content-Length",
)


def signature_for(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header: str | None) -> bool:
    """True when ``header`` is the ``sha256=`` HMAC of ``body`` under ``secret`` (constant time)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_for(body, secret).encode("ascii"), header.strip().encode("ascii", "replace"))


def record_rejection(
    *,
    reason: str,
    status: int,
    remote_addr: str | None,
    delivery_id: str = "",
    event: str = "",
    user_agent: str = "",
    content_length: int | None = None,
    body_sha256: str = "",
) -> GitHubWebhookRejection:
    """Log a refused call in the bounded, rate-limited rejection log (``receiving.record_rejection``)."""
    return receiving.record_rejection(
        GitHubWebhookRejection,
        interval_seconds=settings.GITHUB_WEBHOOK_REJECTION_INTERVAL_SECONDS,
        keep=settings.GITHUB_WEBHOOK_REJECTIONS_KEEP,
        remote_addr=remote_addr,
        reason=reason[:64],
        delivery_id=delivery_id[:100],
        event=event[:64],
        user_agent=user_agent[:200],
        content_length=content_length,
        body_sha256=body_sha256,
        status_code=status,
    )


def prune_rejections(*, keep: int | None = None) -> int:
    """Delete all but the newest ``keep`` rejection rows (the only way a row ever leaves)."""
    keep = settings.GITHUB_WEBHOOK_REJECTIONS_KEEP if keep is None else keep
    return receiving.prune_rejections(GitHubWebhookRejection, keep=keep)


def _reject(
    request: HttpRequest,
    *,
    reason: str,
    status: int,
    message: str,
    body: bytes | None = None,
    content_length: int | None = None,
) -> JsonResponse:
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    event = request.headers.get("X-GitHub-Event", "")
    record_rejection(
        reason=reason,
        status=status,
        remote_addr=client_ip(request),
        delivery_id=delivery_id,
        event=event,
        user_agent=request.headers.get("User-Agent", ""),
        content_length=content_length if content_length is not None else (len(body) if body is not None else None),
        body_sha256=hashlib.sha256(body).hexdigest() if body is not None else "",
    )
    return receiving.refusal_response(
        source="GitHub",
        reason=reason,
        status=status,
        message=message,
        names=f"delivery {delivery_id[:100] or '-'}, event {event[:64] or '-'}, from {client_ip(request)}",
    )


@csrf_exempt
@require_POST
def github_webhook(request: HttpRequest) -> JsonResponse:
    limit = settings.GITHUB_WEBHOOK_MAX_BYTES
    declared = receiving.declared_length(request)
    too_large = f"The body is larger than {limit} bytes."
    if declared > limit:
        return _reject(request, reason="too_large", status=413, content_length=declared, message=too_large)
    header = request.META.get(SIGNATURE_HEADER)
    if not settings.GITHUB_WEBHOOK_SECRET or not header or not header.startswith("sha256="):
        # Nothing to verify against: refused without reading the body.
        if not settings.GITHUB_WEBHOOK_SECRET:
            reason = "secret_not_configured"
        elif header is None:
            reason = "sha1_signature_only" if request.META.get("HTTP_X_HUB_SIGNATURE") else "signature_missing"
        else:
            reason = "signature_invalid"
        return _reject(
            request,
            reason=reason,
            status=401,
            content_length=declared or None,
            message="The X-Hub-Signature-256 signature is missing or does not match.",
        )
    body = receiving.read_body(request, limit)
    if body is None:
        return _reject(request, reason="too_large", status=413, content_length=declared, message=too_large)
    if not verify_signature(body, settings.GITHUB_WEBHOOK_SECRET, header):
        return _reject(
            request,
            reason="signature_invalid",
            status=401,
            body=body,
            message="The X-Hub-Signature-256 signature is missing or does not match.",
        )

    delivery_id = request.headers.get("X-GitHub-Delivery", "").strip()[:100]
    event = request.headers.get("X-GitHub-Event", "").strip()[:64]
    if not delivery_id or not event:
        return _reject(
            request,
            reason="headers_missing",
            status=400,
            body=body,
            message="X-GitHub-Delivery and X-GitHub-Event are required.",
        )

    delivery = store_delivery(request=request, delivery_id=delivery_id, event=event, body=body)
    if delivery is None:
        return JsonResponse({"status": "duplicate", "delivery": delivery_id}, status=200)
    return JsonResponse({"status": "accepted", "delivery": delivery_id}, status=202)


def _summary(body: bytes) -> tuple[str, int | None, str]:
    """Action, installation id and repository from the payload, tolerating anything malformed."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", None, ""
    if not isinstance(payload, dict):
        return "", None, ""
    action = payload.get("action") if isinstance(payload.get("action"), str) else ""
    installation = payload.get("installation") if isinstance(payload.get("installation"), dict) else {}
    installation_id = installation.get("id") if isinstance(installation.get("id"), int) else None
    repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    full_name = repository.get("full_name") if isinstance(repository.get("full_name"), str) else ""
    return action[:64], installation_id, full_name[:200]


def store_delivery(*, request: HttpRequest, delivery_id: str, event: str, body: bytes) -> GitHubWebhookDelivery | None:
    """Store a verified delivery and queue its processing after commit; None for a redelivery."""
    action, installation_id, repository = _summary(body)
    return receiving.store_delivery(
        GitHubWebhookDelivery,
        body=body,
        headers=receiving.kept_headers(request, KEPT_HEADERS),
        enqueue=enqueue_delivery,
        delivery_id=delivery_id,
        event=event,
        action=action,
        hook_id=request.headers.get("X-GitHub-Hook-ID", "")[:32],
        installation_id=installation_id,
        repository=repository,
    )
