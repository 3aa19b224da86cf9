"""Idempotent creates: an ``Idempotency-Key`` and the object its call creates commit together.

1. The key row is inserted first, in the transaction that then creates the object: a concurrent
   call with the same key waits on the key's unique index until the first commits (then replays
   its response) or rolls back (then creates).
2. A web worker that dies midway (crash, gunicorn timeout, lost connection) rolls both back, so a
   retry with the key starts afresh; no key is ever left without its response.
3. A refusal (a ``RuleViolation``) removes the key and keeps the recorded refusal: a retry with the
   key tries again.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from compliance.errors import RuleViolation
from deployments.api.errors import error_body
from deployments.models import IdempotencyKey


class _KeyTaken(Exception):
    """The key is already stored (committed): this call is a retry."""


def create_once(
    *, user, key: str, body_hash: str, submit: Callable[[], Response], retry_stale: bool = True
) -> Response:
    """``submit()`` once per ``(user, key)``; a retry with the same body gets the first response."""
    refused: RuleViolation | None = None
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyKey.objects.create(
                        user=user, key=key, body_hash=body_hash, response_status=0, response_body={}
                    )
            except IntegrityError:
                raise _KeyTaken from None
            try:
                response = submit()
            except RuleViolation as violation:
                refused = violation  # nothing was created: the key goes, the recorded refusal stays
                record.delete()
            else:
                IdempotencyKey.objects.filter(pk=record.pk).update(
                    response_status=response.status_code, response_body=response.data
                )
    except _KeyTaken:
        record = IdempotencyKey.objects.get(user=user, key=key)
        if record.response_status == 0 and retry_stale:
            # A key an earlier version stored before its object and never completed.
            IdempotencyKey.objects.filter(pk=record.pk, response_status=0).delete()
            return create_once(user=user, key=key, body_hash=body_hash, submit=submit, retry_stale=False)
        return replay(record, body_hash)
    if refused is not None:
        raise refused
    return response


def replay(record: IdempotencyKey, body_hash: str) -> Response:
    if record.body_hash != body_hash:
        return Response(
            error_body(
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request body; use a new key.",
            ),
            status=422,
        )
    return Response(record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"})
