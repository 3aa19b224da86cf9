"""The generic CI webhook provider: POST the decision as signed JSON to the environment's URL.

Signature header (documented for receivers in docs/ci-webhook.md)::

    X-Portal-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

Receivers recompute the HMAC over the exact bytes received, compare in constant time, and
reject a ``t`` older than a few minutes (replay) or a delivery id they have already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests
from django.conf import settings

from deployments.choices import DeliveryDecision
from deployments.delivery.providers.base import DecisionProvider, DeliveryOutcome, outcome_for_response
from deployments.delivery.secrets import decrypt_secret
from deployments.models import WebhookEndpoint
from portal import deadline, outbound
from portal.links import absolute_url

SIGNATURE_HEADER = "X-Portal-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """Reference verification for receivers (and tests): good HMAC and a fresh timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def encode_body(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def event_for(decision: str) -> str:
    """``deployment.withdrawn`` for a withdrawn approval, ``deployment.decision`` otherwise."""
    return "deployment.withdrawn" if decision == DeliveryDecision.WITHDRAWN else "deployment.decision"


def request_payload(request, decision: str, *, provider: str) -> dict:
    """The decision as a CI sees it (also what the polling API returns, in spirit)."""
    environment = request.environment
    return {
        "event": event_for(decision),
        "provider": provider,
        "decision": decision,
        "approved": decision == DeliveryDecision.APPROVED,
        "reason": request.status_reason,
        "request": {
            "id": request.pk,
            "url": absolute_url("deployments:request_detail", request.pk),
            "api_url": absolute_url("v1:request-detail", request.pk),
            "service": environment.service.name,
            "environment": environment.name,
            "sha": request.sha,
            "ref": request.ref,
            "status": request.status,
            "decided_at": request.decided_at.isoformat() if request.decided_at else None,
            "approval_expires_at": (
                request.approval_expires_at.isoformat() if request.approval_expires_at else None
            ),
            "external_ids": request.external_ids,
            "superseded_by": (
                absolute_url("deployments:request_detail", request.superseded_by_id)
                if request.superseded_by_id else None
            ),
        },
    }


class WebhookProvider(DecisionProvider):
    name = "webhook"
    delivers_withdrawals = True

    def targets(self, request) -> bool:
        return WebhookEndpoint.objects.filter(environment_id=request.environment_id, is_active=True).exists()

    def build_payload(self, request, decision: str) -> dict:
        return request_payload(request, decision, provider=self.name)

    def deliver(self, delivery) -> DeliveryOutcome:
        endpoint = WebhookEndpoint.objects.filter(environment_id=delivery.request.environment_id).first()
        if endpoint is None or not endpoint.is_active:
            return DeliveryOutcome(delivered=False, error="No active webhook is configured.", permanent=True)
        secret = decrypt_secret(endpoint.secret_ciphertext)
        if secret is None:
            return DeliveryOutcome(
                delivered=False, error="The webhook secret cannot be decrypted; set it again.", permanent=True
            )
        body = encode_body({**delivery.payload, "delivery_id": delivery.pk})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "deployment-portal/1",
            "X-Portal-Event": event_for(delivery.decision),
            "X-Portal-Delivery": str(delivery.pk),
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body, int(time.time()))
        timeout = deadline.bounded(settings.PORTAL_HTTP_TIMEOUT)  # per operation; the attempt has a total deadline
        # The outbound policy applies again here: https, and a public address checked at connect
        # (resolve and pin), whatever the URL resolved to when it was saved.
        try:
            with outbound.session() as http:
                response = http.post(endpoint.url, data=body, headers=headers, timeout=timeout,
                                     allow_redirects=False)
        except outbound.OutboundRefused as exc:
            return DeliveryOutcome(delivered=False, error=str(exc), permanent=True)
        except requests.RequestException as exc:
            return DeliveryOutcome(delivered=False, error=outbound.describe_failure(exc, timeout=timeout))
        return outcome_for_response(response)
