"""Verification of the audit trail: every link, every unlinked row, every checkpoint, every replayed
state. It never stops at the first problem: each is reported with its kind, and a link that fails
one check is still checked against the next ones so independent tampering shows separately.

Kinds: ``links_removed``, ``reordered``, ``unknown_model``, ``deleted``, ``unknown_key``, ``edited``,
``forged_link`` (the keyed hash does not verify: recomputed without the key), ``public_hash``,
``malformed``, ``forged_insert``, ``unlinked``, ``rewritten`` and ``truncated`` (against a signed
checkpoint), ``checkpoint_signature``, ``checkpoint_unreadable``, ``state_mismatch``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import checkpoints as cp
from . import replay
from .chain import (
    GENESIS_HASH,
    chained_model,
    chained_models,
    keyed_link_hash,
    public_link_hash,
    tag_verifies,
    tags_for,
    timestamp_field,
    unlinked,
    untagged_is_forged,
)
from .keys import UnknownKey, trusted_public_keys
from .models import ChainLink, ForgedEntry

MAX_DETAILED = 200


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    seq: int | None = None

    def __str__(self) -> str:
        where = f"link {self.seq}: " if self.seq is not None else ""
        return f"[{self.kind}] {where}{self.message}"


@dataclass
class ChainReport:
    """What verification found. ``problems`` keeps the first ``MAX_DETAILED``; ``problem_count`` all."""

    links_checked: int = 0
    links_verified: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    head_public_hash: str = GENESIS_HASH
    checkpoints_checked: int = 0
    latest_checkpoint: cp.Checkpoint | None = None
    states_replayed: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, message: str, seq: int | None = None) -> None:
        self.problem_count += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if len(self.problems) < MAX_DETAILED:
            self.problems.append(Problem(kind, message, seq))

    @property
    def ok(self) -> bool:
        return not self.problem_count

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def broken_seq(self) -> int | None:
        """The first link with a problem (None when the links themselves are fine)."""
        return next((p.seq for p in self.problems if p.seq is not None), None)

    @property
    def problem(self) -> str:
        return self.first.message if self.first else ""

    @property
    def unlinked_count(self) -> int:
        return self.kinds.get("unlinked", 0)

    def summary(self) -> str:
        checkpoint = (
            f"; last signed checkpoint at link {self.latest_checkpoint.seq} ({self.latest_checkpoint.time})"
            if self.latest_checkpoint else "; no signed checkpoint to compare with"
        )
        counts = (
            f"{self.links_checked} links (head {self.head_seq} {self.head_hash}), "
            f"{self.checkpoints_checked} checkpoints, {self.states_replayed} states replayed{checkpoint}."
        )
        if self.ok:
            return f"Chain intact: {counts}"
        first = self.first
        lines = [f"FAILED: {self.problem_count} problem(s). First: {first}"]
        if first.seq is not None:
            lines.insert(0, f"BROKEN at link {first.seq}: {first.message}")
        lines.append("By kind: " + ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items())))
        lines.extend(f"  {p}" for p in self.problems[1:50])
        if self.problem_count > 50:
            lines.append(f"  ... and {self.problem_count - 50} more")
        lines.append(f"Checked {counts}")
        return "\n".join(lines)


def _iter_links(batch_size: int = 5000) -> Iterable[list[ChainLink]]:
    last = 0
    while True:
        batch = list(ChainLink.objects.filter(seq__gt=last).order_by("seq")[:batch_size])
        if not batch:
            return
        yield batch
        last = batch[-1].seq


def verify_chain(
    *,
    grace: timedelta | None = None,
    now: datetime | None = None,
    checkpoints: Iterable[cp.Checkpoint | cp.CheckpointError] | None = None,
    replay_states: bool = True,
) -> ChainReport:
    """Verify the whole audit trail. ``checkpoints`` defaults to the portal's checkpoint files."""
    now = now or timezone.now()
    report = ChainReport()
    by_seq = _load_checkpoints(report, cp.read_all() if checkpoints is None else checkpoints)
    _verify_links(report, by_seq)
    _compare_end(report, by_seq)
    _find_forged_and_unlinked(report, grace=grace, now=now)
    if replay_states:
        replay.verify_states(report)
    return report


def _load_checkpoints(report: ChainReport, items) -> dict[int, cp.Checkpoint]:
    by_seq: dict[int, cp.Checkpoint] = {}
    for item in items:
        if isinstance(item, cp.CheckpointError):
            report.add("checkpoint_unreadable", f"checkpoint {item}")
            continue
        report.checkpoints_checked += 1
        if not item.verifies():
            trusted = item.signing_key in trusted_public_keys()
            report.add(
                "checkpoint_signature",
                f"checkpoint {item.source} (link {item.seq}, {item.time}) does not carry a valid signature "
                + ("of the portal's signing key: it was forged or altered." if trusted else
                   f"of a trusted key: it names key {item.signing_key[:16]}…, which is neither the signing key nor "
                   "listed in PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS."),
            )
            continue
        by_seq[item.seq] = item
        if report.latest_checkpoint is None or item.seq >= report.latest_checkpoint.seq:
            report.latest_checkpoint = item
    return by_seq


def _verify_links(report: ChainReport, by_seq: dict[int, cp.Checkpoint]) -> None:
    expected_seq, prev, prev_public = 1, GENESIS_HASH, GENESIS_HASH
    for batch in _iter_links():
        objects = _rows_of(batch)
        for link in batch:
            _verify_link(report, link, expected_seq, prev, prev_public, objects, by_seq)
            report.links_checked += 1
            report.head_seq, report.head_hash, report.head_public_hash = link.seq, link.entry_hash, link.public_hash
            expected_seq, prev, prev_public = link.seq + 1, link.entry_hash, link.public_hash


def _rows_of(batch: list[ChainLink]) -> dict[str, dict[int, models.Model]]:
    by_label: dict[str, list[int]] = {}
    for link in batch:
        by_label.setdefault(link.model_label, []).append(link.object_id)
    objects = {}
    for label, ids in by_label.items():
        entry = chained_model(label)
        if entry is not None:
            objects[label] = entry.model._base_manager.in_bulk(ids)
    return objects


def _verify_link(report, link, expected_seq, prev, prev_public, objects, by_seq) -> None:
    where = f"{link.model_label} #{link.object_id}"
    seq = link.seq
    if link.seq != expected_seq:
        report.add("links_removed", f"link {expected_seq} is missing (found {link.seq} next): links were removed.",
                   expected_seq)
    elif link.prev_hash != prev:
        report.add("reordered", f"{where} does not follow link {seq - 1}: its previous hash does not match "
                   "(links were reordered or replaced).", seq)
    checkpoint = by_seq.get(seq)
    if checkpoint is not None and (checkpoint.head_hash, checkpoint.public_hash) != (link.entry_hash, link.public_hash):
        report.add("rewritten", f"{where} differs from the signed checkpoint of {checkpoint.time}: "
                   "the history up to that checkpoint was rewritten.", seq)
    entry = chained_model(link.model_label)
    if entry is None:
        report.add("unknown_model", f"{where}: model {link.model_label} is not registered for the chain.", seq)
        return
    instance = objects[link.model_label].get(link.object_id)
    if instance is None:
        report.add("deleted", f"{where} was deleted.", seq)
        return
    try:
        row_digest = entry.row_digest(instance)
    except Exception as exc:  # a row the canonical form cannot read: report it, keep going
        report.add("malformed", f"{where} cannot be read into its canonical form: {exc!r}", seq)
        return
    if row_digest != link.row_digest:
        report.add("edited", f"{where} was changed after it was sealed: its content no longer matches its hash.", seq)
        return
    try:
        keyed = keyed_link_hash(link.key_id, link.prev_hash, link.model_label, link.object_id, link.row_digest)
    except UnknownKey:
        report.add("unknown_key", f"{where} names chain key {link.key_id!r}, which the portal does not hold "
                   "(add it to PORTAL_AUDIT_CHAIN_RETIRED_KEYS after a rotation).", seq)
        return
    if keyed != link.entry_hash:
        report.add("forged_link", f"{where}: the link's keyed hash does not verify: the chain was recomputed or "
                   "written without the portal's chain key.", seq)
        return
    if public_link_hash(prev_public, link.model_label, link.object_id, link.row_digest) != link.public_hash:
        report.add("public_hash", f"{where}: its public hash does not follow link {seq - 1}'s: the link was rewritten.",
                   seq)
        return
    report.links_verified += 1


def _compare_end(report: ChainReport, by_seq: dict[int, cp.Checkpoint]) -> None:
    latest = report.latest_checkpoint
    if latest is not None and latest.seq > report.head_seq:
        report.add(
            "truncated",
            f"the chain ends at link {report.head_seq} but the signed checkpoint of {latest.time} records link "
            f"{latest.seq}: links were removed from the end of the chain.",
        )


def _find_forged_and_unlinked(report: ChainReport, *, grace: timedelta | None, now: datetime) -> None:
    grace = grace if grace is not None else timedelta(minutes=settings.PORTAL_AUDIT_CHAIN_GRACE_MINUTES)
    cutoff = now - grace
    recorded = {(f.model_label, f.object_id) for f in ForgedEntry.objects.all()}
    for entry in chained_models():
        stamp = timestamp_field(entry.model)
        for chunk in _chunks(unlinked(entry).iterator(chunk_size=1000), 1000):
            tags = tags_for(entry, [r.pk for r in chunk])
            for row in chunk:
                where = f"{entry.label} #{row.pk}"
                try:
                    row_digest = entry.row_digest(row)
                except Exception as exc:
                    report.add("malformed", f"{where} cannot be read into its canonical form: {exc!r}")
                    continue
                if (entry.label, row.pk) in recorded or (
                    not tag_verifies(entry, row, tags.get(row.pk), row_digest) and untagged_is_forged(entry, row, now)
                ):
                    report.add("forged_insert", f"{where} was not written through the portal (no valid write-time "
                               "tag): it is not linked into the chain.")
                elif stamp is None or getattr(row, stamp) <= cutoff:
                    report.add("unlinked", f"{where} is older than the grace period and not linked into the chain.")


def _chunks(iterator, size: int):
    chunk = []
    for item in iterator:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
