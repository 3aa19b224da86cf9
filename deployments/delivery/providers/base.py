"""The one interface every CI provider implements to receive decisions (see ``deployments.delivery.outbox``).

A provider says whether a request's decision concerns it (``targets``), what to send
(``build_payload``, stored on the outbox row when the decision commits) and makes one delivery
attempt (``deliver``). ``deliver`` never raises for HTTP or network errors: it reports them in a
``DeliveryOutcome`` and the outbox decides whether and when to try again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from django.utils import timezone
from requests.structures import CaseInsensitiveDict

from portal.outbound import describe_status


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After / rate-limit reset)
    permanent: bool = False  # retrying cannot help → failed at once
    abandoned: bool = False  # cut off at the attempt's deadline (set by the outbox, not by providers)


class DecisionProvider:
    """Base class of the decision providers (generic webhook, GitHub, GitLab, Jenkins)."""

    name: str = ""
    # Can this provider tell CI that an approval it delivered was withdrawn (cancelled, superseded,
    # expired)? If not, an undelivered approval is still withheld, but nothing follows a delivered one.
    delivers_withdrawals: bool = False

    def targets(self, request) -> bool:
        """Must this provider receive ``request``'s decision?"""
        raise NotImplementedError

    def build_payload(self, request, decision: str) -> dict:
        """The JSON-serialisable payload for ``decision`` ("approved", "rejected", or "withdrawn" when the
        provider ``delivers_withdrawals``)."""
        raise NotImplementedError

    def deliver(self, delivery) -> DeliveryOutcome:
        """One delivery attempt of ``delivery`` (a ``DecisionDelivery``); never raises for HTTP/network errors."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# HTTP statuses after which a retry may succeed; any other 4xx is permanent.
RETRYABLE_CLIENT_ERRORS = {408, 409, 425, 429}


def retry_after_seconds(headers, now: datetime | None = None) -> float | None:
    """Seconds to wait according to ``Retry-After`` (seconds or HTTP date) or a rate-limit reset header
    (``X-RateLimit-*`` as GitHub and GitLab send them, or the IETF draft's ``RateLimit-*``): the one
    parser every provider uses. ``None`` when the answer says nothing about waiting."""
    now = now or timezone.now()
    headers = CaseInsensitiveDict(headers or {})
    value = (headers.get("Retry-After") or "").strip()
    if value:
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, (when - now).total_seconds())
    remaining = (headers.get("X-RateLimit-Remaining") or headers.get("RateLimit-Remaining") or "").strip()
    reset = (headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset") or "").strip()
    if remaining == "0" and reset.isdigit():
        reset_value = float(reset)
        # Epoch seconds (GitHub) or seconds from now (IETF draft).
        return max(0.0, reset_value - now.timestamp()) if reset_value > 1e9 else reset_value
    return None


def outcome_for_response(response) -> DeliveryOutcome:
    """Turn an HTTP response into an outcome: 2xx delivered, retryable or permanent failures otherwise."""
    code = response.status_code
    if 200 <= code < 300:
        return DeliveryOutcome(delivered=True, status_code=code)
    # The status alone: the receiver's body (and reason phrase) is its own text — possibly an echo of
    # what we sent, internal details or markup — and this error is shown to auditors and e-mailed.
    error = describe_status(code)
    permanent = 400 <= code < 500 and code not in RETRYABLE_CLIENT_ERRORS
    return DeliveryOutcome(
        delivered=False,
        status_code=code,
        error=error,
        retry_after=retry_after_seconds(response.headers),
        permanent=permanent,
    )
