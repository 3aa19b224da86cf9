"""A keyed hash chain that makes tampering with audit entries and decision records detectable, even
by someone who holds the database but not the portal's keys.

Each registered model's rows are linked by a ``ChainLink``, with ``d = sha256(canonical row)``:

- ``entry_hash = HMAC(chain key, prev entry_hash \\n label \\n pk \\n d)``: without the key nobody
  can recompute the chain after rewriting history;
- ``public_hash = sha256(prev public_hash \\n label \\n pk \\n d)``: the same chain without a secret,
  which signed checkpoints carry, so an auditor can check an exported segment offline.

Rows must come from the portal: when a chained row is written, a **write-time tag**
(``HMAC(key, "tag" \\n label \\n pk \\n d)``) is written in the same transaction. The sealer links
only rows whose tag verifies; a row inserted straight into the database is recorded as a
``ForgedEntry`` instead, never linked, and reported by every verification.

The sealer runs after commits that wrote a chained row (a debounced Celery task) and every minute
from beat, under one lock (a PostgreSQL advisory lock; SQLite serializes writers). ``verify.py``
checks everything; ``checkpoints.py`` signs the head outside the database.

``compliance`` never imports ``deployments``: ``deployments`` registers its decision records with
``register_chained_model`` from its ``audit`` module. Entries must have integer primary keys.
Changing a chained row breaks the chain *by design*: deactivate users, never delete them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from celery import signature
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist
from django.db import connection, models, transaction
from django.db.models import Exists, Max, OuterRef
from django.db.models.signals import post_save
from django.utils import timezone

from portal import enqueue

from .canonical import canonical_json, default_canonical, digest
from .keys import UnknownKey, chain_key, current_chain_key
from .models import ChainLink, ChainTag, ForgedEntry

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Any fixed 64-bit number: the key of the advisory lock that serializes sealers on PostgreSQL.
ADVISORY_LOCK_KEY = 0x706F7274616C  # "portal"
SEAL_BATCH_SIZE = 2000
# A sealing pass starts this many ids below the newest linked row of each model.
SEAL_LOOKBACK_IDS = 100_000

Canonical = Callable[[models.Model], dict]


@dataclass(frozen=True)
class ChainedModel:
    model: type[models.Model]
    canonical: Canonical

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    def row_digest(self, instance: models.Model) -> str:
        return digest(canonical_json(self.canonical(instance)))


_registry: dict[str, ChainedModel] = {}


def register_chained_model(model: type[models.Model], *, canonical: Canonical | None = None) -> None:
    """Chain ``model``'s rows. Idempotent; ``canonical(instance) -> dict`` chooses what is hashed."""
    entry = ChainedModel(model=model, canonical=canonical or default_canonical)
    _registry[entry.label] = entry
    post_save.connect(_after_write, sender=model, dispatch_uid=f"audit_chain.{entry.label}", weak=False)


def chained_models() -> list[ChainedModel]:
    return list(_registry.values())


def chained_model(label: str) -> ChainedModel | None:
    return _registry.get(label)


# --- the hashes (the offline verifier repeats these three lines; keep them identical) -----------


def _message(prev: str, label: str, pk: int, row_digest: str) -> str:
    return f"{prev}\n{label}\n{pk}\n{row_digest}"


def public_link_hash(prev_public: str, label: str, pk: int, row_digest: str) -> str:
    return hashlib.sha256(_message(prev_public, label, pk, row_digest).encode()).hexdigest()


def keyed_link_hash(key_id: str, prev_hash: str, label: str, pk: int, row_digest: str) -> str:
    """Raises ``UnknownKey`` when the portal does not hold the key named ``key_id``."""
    return chain_key(key_id).mac(_message(prev_hash, label, pk, row_digest))


def write_tag(key_id: str, label: str, pk: int, row_digest: str) -> str:
    return chain_key(key_id).mac(_message("tag", label, pk, row_digest))


# --- write-time tags ----------------------------------------------------------------------------


def _after_write(sender, instance, created, **kwargs):
    """Tag the row as written by the portal, in the writing transaction; then ask for a seal."""
    entry = _registry.get(sender._meta.label_lower)
    if entry is None:
        return
    tag_row(entry, instance.pk, created=created)
    if created and settings.PORTAL_AUDIT_CHAIN_SEAL_ON_COMMIT:
        _schedule_seal()


def tag_row(entry: ChainedModel, pk: int, *, created: bool = True) -> None:
    # The row as the database holds it (JSON and datetimes exactly as the sealer will read them).
    stored = entry.model._base_manager.filter(pk=pk).first()
    if stored is None:
        return
    key = current_chain_key()
    values = {"key_id": key.key_id, "tag": write_tag(key.key_id, entry.label, pk, entry.row_digest(stored))}
    if created:
        ChainTag.objects.create(model_label=entry.label, object_id=pk, **values)
    elif not ChainLink.objects.filter(model_label=entry.label, object_id=pk).exists():
        ChainTag.objects.update_or_create(model_label=entry.label, object_id=pk, defaults=values)


def tags_for(entry: ChainedModel, pks: list[int]) -> dict[int, ChainTag]:
    return {t.object_id: t for t in ChainTag.objects.filter(model_label=entry.label, object_id__in=pks)}


def tag_verifies(entry: ChainedModel, instance: models.Model, tag: ChainTag | None, row_digest: str) -> bool:
    if tag is None:
        return False
    try:
        return write_tag(tag.key_id, entry.label, instance.pk, row_digest) == tag.tag
    except UnknownKey:
        return False


def timestamp_field(model) -> str | None:
    for name in ("timestamp", "created_at"):
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        return name
    return None


def untagged_is_forged(entry: ChainedModel, instance: models.Model, now) -> bool:
    """An untagged row is forged once it is older than the tag grace period (its writer's commit
    would have tagged it by then), or when it claims a time in the future."""
    stamp = timestamp_field(entry.model)
    if stamp is None:
        return True
    written = getattr(instance, stamp)
    if written is None:
        return True
    grace = timedelta(seconds=settings.PORTAL_AUDIT_TAG_GRACE_SECONDS)
    return written <= now - grace or written > now + grace


# --- sealing ------------------------------------------------------------------------------------


def _take_sealer_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
    # SQLite: the portal opens IMMEDIATE transactions, so writers are already serialized.


def unlinked(entry: ChainedModel):
    linked = ChainLink.objects.filter(model_label=entry.label, object_id=OuterRef("pk"))
    return entry.model._base_manager.filter(~Exists(linked)).order_by("pk")


def sealable(entry: ChainedModel):
    forged = ForgedEntry.objects.filter(model_label=entry.label, object_id=OuterRef("pk"))
    return unlinked(entry).filter(~Exists(forged))


def chain_head() -> tuple[int, str]:
    """The sequence number and hash of the last link (0 and the genesis hash when empty)."""
    head = ChainLink.objects.order_by("-seq").first()
    return (head.seq, head.entry_hash) if head else (0, GENESIS_HASH)


def _start_after(entry: ChainedModel, full: bool) -> int:
    """Where a sealing pass starts: a window below the newest linked row (rows commit slightly out
    of id order), or the beginning for a full pass (the daily verification runs one)."""
    if full:
        return 0
    newest = ChainLink.objects.filter(model_label=entry.label).aggregate(newest=Max("object_id"))["newest"]
    return max(0, (newest or 0) - SEAL_LOOKBACK_IDS)


def seal_chain(*, batch_size: int = SEAL_BATCH_SIZE, full: bool = False) -> int:
    """Link every chained row that carries a valid write-time tag; returns how many were linked.

    Rows without one are recorded as ``ForgedEntry`` once past the tag grace period (see
    ``untagged_is_forged``) and never linked. A pass looks at the rows from ``SEAL_LOOKBACK_IDS``
    below the newest linked one, so its cost does not grow with the chain; ``full`` looks at all.
    Safe to run twice and in parallel: the lock makes sealers take turns and each re-reads the head.
    """
    total = 0
    key = current_chain_key()
    for entry in chained_models():
        after = _start_after(entry, full)  # then walks past rows left waiting (untagged, in their grace period)
        while True:
            with transaction.atomic():
                _take_sealer_lock()
                head = ChainLink.objects.order_by("-seq").first()
                seq = head.seq if head else 0
                prev = head.entry_hash if head else GENESIS_HASH
                prev_public = head.public_hash if head else GENESIS_HASH
                rows = list(sealable(entry).filter(pk__gt=after)[:batch_size])
                tags = tags_for(entry, [r.pk for r in rows])
                now = timezone.now()
                links, forged = [], []
                for row in rows:
                    row_digest = entry.row_digest(row)
                    if not tag_verifies(entry, row, tags.get(row.pk), row_digest):
                        if untagged_is_forged(entry, row, now):
                            forged.append(_forged(entry, row, tags.get(row.pk), now))
                        continue
                    seq += 1
                    entry_hash = keyed_link_hash(key.key_id, prev, entry.label, row.pk, row_digest)
                    public = public_link_hash(prev_public, entry.label, row.pk, row_digest)
                    links.append(
                        ChainLink(
                            seq=seq, model_label=entry.label, object_id=row.pk, row_digest=row_digest,
                            prev_hash=prev, entry_hash=entry_hash, public_hash=public, key_id=key.key_id,
                            sealed_at=now,
                        )
                    )
                    prev, prev_public = entry_hash, public
                ChainLink.objects.bulk_create(links)
                ForgedEntry.objects.bulk_create(forged, ignore_conflicts=True)
                linked_ids = [link.object_id for link in links]
                ChainTag.objects.filter(model_label=entry.label, object_id__in=linked_ids).delete()
            total += len(links)
            if forged:
                logger.error("Refused to link %d %s rows not written through the portal.", len(forged), entry.label)
            if len(rows) < batch_size:
                break
            after = rows[-1].pk
    return total


def _forged(entry: ChainedModel, row, tag: ChainTag | None, now) -> ForgedEntry:
    if tag is None:
        reason = "It has no write-time tag: it was inserted without going through the portal."
    else:
        reason = "Its write-time tag does not verify: it was inserted or changed without going through the portal."
    return ForgedEntry(model_label=entry.label, object_id=row.pk, detected_at=now, reason=reason)


SEAL_PENDING_KEY = "compliance.audit_chain.seal_pending"
# The Celery task that seals (``compliance.audit.tasks``), called by its registered name: the task
# module imports this one.
SEAL_TASK = "compliance.seal_audit_chain"


def request_seal() -> None:
    """Queue one sealing soon; calls within the debounce window share it."""
    debounce = settings.PORTAL_AUDIT_CHAIN_SEAL_DEBOUNCE_SECONDS
    if not cache.add(SEAL_PENDING_KEY, 1, timeout=debounce):
        return
    # One fast publish: the broker being down must neither fail nor slow the request that wrote evidence.
    if not enqueue.publish(signature(SEAL_TASK), countdown=debounce, what="audit chain sealing"):
        cache.delete(SEAL_PENDING_KEY)  # the periodic job will seal


def _schedule_seal() -> None:
    # One on_commit hook per transaction is enough.
    if connection.in_atomic_block and any(
        getattr(func, "__name__", "") == "request_seal" for _, func, _ in connection.run_on_commit
    ):
        return
    transaction.on_commit(request_seal, robust=True)
