"""The HTTP side of a webhook intake: refuse early, read a bounded body, store once, answer fast.

Steps every integration's endpoint follows (it supplies how a call is authenticated):

1. A declared body over the limit is refused (413) before reading, and so is a call that cannot be
   authenticated (401). Each refusal goes to the integration's bounded, rate-limited rejection log
   and is logged as a warning; nothing else happens.
2. The body is read in chunks, stopping past the limit (413).
3. The delivery is stored under its unique id with the headers worth keeping (never a secret); a
   redelivery answers 200 and changes nothing.
4. Processing is queued after commit; the answer is 202.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from .models import ReceivedWebhook, RefusedWebhook

logger = logging.getLogger(__name__)


def declared_length(request: HttpRequest) -> int:
    """The Content-Length the caller declared (0 when absent or not a number)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` (reads at most ``limit + 1`` bytes)."""
    chunks = []
    remaining = limit + 1
    while remaining > 0:
        chunk = request.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    return None if len(body) > limit else body


def kept_headers(request: HttpRequest, names: Iterable[str]) -> dict[str, str]:
    return {name: request.headers[name][:500] for name in names if name in request.headers}



def record_rejection(
    model: type[RefusedWebhook], *, interval_seconds: int, keep: int, remote_addr: str | None, **fields
) -> RefusedWebhook:
    """Log a refused call: one row per source address per ``interval_seconds`` (a later refusal from the
    same address within the interval is counted on that row; the first call's details stay). A new row
    prunes the log to the newest ``keep`` rows."""
    now = timezone.now()
    recent = model.objects.filter(received_at__gte=now - timedelta(seconds=interval_seconds))
    recent = recent.filter(remote_addr=remote_addr) if remote_addr else recent.filter(remote_addr__isnull=True)
    row_id = recent.order_by("-received_at", "-id").values_list("pk", flat=True).first()
    if row_id is not None and model.objects.filter(pk=row_id).update(count=F("count") + 1, last_received_at=now):
        return model.objects.get(pk=row_id)
    row = model.objects.create(remote_addr=remote_addr, last_received_at=now, **fields)
    prune_rejections(model, keep=keep)
    return row


def prune_rejections(model: type[RefusedWebhook], *, keep: int) -> int:
    """Delete all but the newest ``keep`` rejection rows (the only way a row ever leaves)."""
    oldest_kept = model.objects.order_by("-id").values_list("pk", flat=True)[keep - 1 : keep].first()
    if oldest_kept is None:
        return 0
    deleted, _ = model.objects.filter(pk__lt=oldest_kept).delete()
    return deleted


def refusal_response(*, source: str, reason: str, status: int, message: str, names: str) -> JsonResponse:
    """Log a refusal as a warning (``names``: what identifies the call, without secrets) and answer in
    the portal's error format."""
    logger.warning("%s webhook refused: %s (%s)", source, reason, names)
    return JsonResponse({"error": {"code": reason, "message": message}}, status=status)


def store_delivery(
    model: type[ReceivedWebhook],
    *,
    body: bytes,
    headers: dict[str, str],
    enqueue: Callable[[int], None],
    **fields,
) -> ReceivedWebhook | None:
    """Store an authenticated delivery and queue its processing after commit; None for a redelivery
    (its id, one of ``fields``, is unique). A NUL in the body is replaced: the text is kept readable."""
    try:
        with transaction.atomic():
            delivery = model.objects.create(
                headers=headers,
                body=body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
                body_sha256=hashlib.sha256(body).hexdigest(),
                **fields,
            )
            transaction.on_commit(lambda: enqueue(delivery.pk))
    except IntegrityError:
        logger.info("%s redelivery %s acknowledged and ignored", model._meta.verbose_name, fields)
        return None
    return delivery
