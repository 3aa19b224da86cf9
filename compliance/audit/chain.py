"""A hash chain that makes tampering with audit entries and decision records detectable.

Each registered model's rows are linked, in id order, by a ``ChainLink``:
``entry_hash = sha256(prev_hash + canonical JSON of the row)``. The sealer appends links for every
row that has none yet; it runs after commits that wrote a chained row (a debounced Celery task) and
every minute from beat, under one lock (a PostgreSQL advisory lock; SQLite serializes writers), so
hot transactions never wait on a global lock. ``verify_chain`` recomputes everything and reports
the first broken link; ``manage.py verify_audit_chain`` and a daily task use it.

``compliance`` never imports ``deployments``: ``deployments`` registers its decision records with
``register_chained_model`` from its ``audit`` module. Entries must have integer primary keys.

Changing a chained row breaks the chain *by design* — including Django's ``SET_NULL`` on
``LogEntry.actor`` when a user is deleted: deactivate users, never delete them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from celery import signature
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist
from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef
from django.db.models.signals import post_save
from django.utils import timezone

from portal import enqueue

from .models import ChainLink

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Any fixed 64-bit number: the key of the advisory lock that serializes sealers on PostgreSQL.
ADVISORY_LOCK_KEY = 0x706F7274616C  # "portal"
SEAL_BATCH_SIZE = 2000
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Canonical = Callable[[models.Model], dict]


@dataclass(frozen=True)
class ChainedModel:
    model: type[models.Model]
    canonical: Canonical

    @property
    def label(self) -> str:
        return self.model._meta.label_lower


_registry: dict[str, ChainedModel] = {}


def default_canonical(instance: models.Model) -> dict:
    """Every concrete field by its column attribute name (``actor_id``, not the related object)."""
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def register_chained_model(model: type[models.Model], *, canonical: Canonical | None = None) -> None:
    """Chain ``model``'s rows. Idempotent; ``canonical(instance) -> dict`` chooses what is hashed."""
    entry = ChainedModel(model=model, canonical=canonical or default_canonical)
    _registry[entry.label] = entry
    post_save.connect(_schedule_after_write, sender=model, dispatch_uid=f"audit_chain.{entry.label}", weak=False)


def chained_models() -> list[ChainedModel]:
    return list(_registry.values())


# --- canonical form -----------------------------------------------------------------------------


def _normalize(value):
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return value.astimezone(UTC).strftime(DATETIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_normalize(v) for v in value]
    return value


def canonical_json(data: dict) -> str:
    """Sorted keys, no whitespace, UTC datetimes with microseconds: the same row gives the same text on
    SQLite and PostgreSQL."""
    return json.dumps(_normalize(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link_hash(prev_hash: str, label: str, pk: int, canonical: str) -> str:
    payload = f"{prev_hash}\n{label}\n{pk}\n{canonical}".encode()
    return hashlib.sha256(payload).hexdigest()


def entry_hash_for(entry: ChainedModel, instance: models.Model, prev_hash: str) -> str:
    return link_hash(prev_hash, entry.label, instance.pk, canonical_json(entry.canonical(instance)))


# --- sealing ------------------------------------------------------------------------------------


def _take_sealer_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
    # SQLite: the portal opens IMMEDIATE transactions, so writers are already serialized.


def unlinked(entry: ChainedModel):
    linked = ChainLink.objects.filter(model_label=entry.label, object_id=OuterRef("pk"))
    return entry.model._default_manager.filter(~Exists(linked)).order_by("pk")


def seal_chain(*, batch_size: int = SEAL_BATCH_SIZE) -> int:
    """Append a link for every chained row that has none yet; returns how many were linked.

    Safe to run twice and in parallel: the lock makes sealers take turns and each re-reads the head.
    """
    total = 0
    for entry in chained_models():
        while True:
            with transaction.atomic():
                _take_sealer_lock()
                head = ChainLink.objects.order_by("-seq").first()
                seq = head.seq if head else 0
                prev = head.entry_hash if head else GENESIS_HASH
                rows = list(unlinked(entry)[:batch_size])
                links = []
                now = timezone.now()
                for row in rows:
                    seq += 1
                    digest = entry_hash_for(entry, row, prev)
                    links.append(
                        ChainLink(
                            seq=seq, model_label=entry.label, object_id=row.pk,
                            prev_hash=prev, entry_hash=digest, sealed_at=now,
                        )
                    )
                    prev = digest
                ChainLink.objects.bulk_create(links)
            total += len(links)
            if len(rows) < batch_size:
                break
    return total


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


def _schedule_after_write(sender, instance, created, **kwargs):
    if not created or not settings.PORTAL_AUDIT_CHAIN_SEAL_ON_COMMIT:
        return
    # One on_commit hook per transaction is enough.
    if connection.in_atomic_block and any(
        getattr(func, "__name__", "") == "request_seal" for _, func, _ in connection.run_on_commit
    ):
        return
    transaction.on_commit(request_seal, robust=True)


# --- verification -------------------------------------------------------------------------------


@dataclass
class ChainReport:
    """What verification found: the first break (if any) and old rows still unlinked."""

    links_checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    broken_seq: int | None = None
    problem: str = ""
    unlinked: list[str] = field(default_factory=list)
    unlinked_count: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_seq is None and not self.unlinked_count

    def summary(self) -> str:
        lines = []
        if self.broken_seq is not None:
            lines.append(f"BROKEN at link {self.broken_seq}: {self.problem}")
        else:
            lines.append(f"Chain intact: {self.links_checked} links, head {self.head_seq} {self.head_hash}.")
        if self.unlinked_count:
            shown = ", ".join(self.unlinked)
            lines.append(f"{self.unlinked_count} entries older than the grace period are not linked: {shown}")
        return "\n".join(lines)


def _iter_links(batch_size: int = 5000) -> Iterable:
    last = 0
    while True:
        batch = list(ChainLink.objects.filter(seq__gt=last).order_by("seq")[:batch_size])
        if not batch:
            return
        yield batch
        last = batch[-1].seq


def verify_chain(*, grace: timedelta | None = None, now: datetime | None = None) -> ChainReport:
    """Recompute the chain from the start and stop at the first broken link.

    A link breaks when: its sequence number skips (a link was removed), its ``prev_hash`` is not the
    previous link's hash (links reordered or replaced), its row is gone (entry deleted), its model is
    unknown, or the row's recomputed hash differs (entry edited, or rows swapped).
    """
    report = ChainReport()
    expected_seq = 1
    prev = GENESIS_HASH
    for batch in _iter_links():
        objects: dict[str, dict[int, models.Model]] = {}
        by_label: dict[str, list[int]] = {}
        for link in batch:
            by_label.setdefault(link.model_label, []).append(link.object_id)
        for label, ids in by_label.items():
            entry = _registry.get(label)
            if entry is not None:
                objects[label] = entry.model._default_manager.in_bulk(ids)
        for link in batch:
            where = f"{link.model_label} #{link.object_id}"
            problem = ""
            if link.seq != expected_seq:
                problem = f"link {expected_seq} is missing (found {link.seq} next): links were removed."
            elif link.prev_hash != prev:
                problem = (
                    f"{where} does not follow link {link.seq - 1}: its previous hash does not match "
                    "(links were reordered or replaced)."
                )
            elif link.model_label not in _registry:
                problem = f"{where}: model {link.model_label} is not registered for the chain."
            else:
                instance = objects[link.model_label].get(link.object_id)
                if instance is None:
                    problem = f"{where} was deleted."
                elif entry_hash_for(_registry[link.model_label], instance, link.prev_hash) != link.entry_hash:
                    problem = f"{where} was changed after it was sealed: its content no longer matches its hash."
            if problem:
                report.broken_seq = link.seq if link.seq == expected_seq else expected_seq
                report.problem = problem
                return report
            report.links_checked += 1
            report.head_seq = link.seq
            report.head_hash = link.entry_hash
            prev = link.entry_hash
            expected_seq += 1
    _find_old_unlinked(report, grace=grace, now=now)
    return report


def _timestamp_field(model) -> str | None:
    for name in ("timestamp", "created_at"):
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        return name
    return None


def _find_old_unlinked(report: ChainReport, *, grace: timedelta | None, now: datetime | None) -> None:
    grace = grace if grace is not None else timedelta(minutes=settings.PORTAL_AUDIT_CHAIN_GRACE_MINUTES)
    cutoff = (now or timezone.now()) - grace
    for entry in chained_models():
        stamp = _timestamp_field(entry.model)
        queryset = unlinked(entry)
        if stamp:
            queryset = queryset.filter(**{f"{stamp}__lte": cutoff})
        count = queryset.count()
        if count:
            report.unlinked_count += count
            report.unlinked.extend(f"{entry.label} #{pk}" for pk in queryset.values_list("pk", flat=True)[:10])


def chain_head() -> tuple[int, str]:
    """The sequence number and hash of the last link (0 and the genesis hash when empty)."""
    head = ChainLink.objects.order_by("-seq").first()
    return (head.seq, head.entry_hash) if head else (0, GENESIS_HASH)
