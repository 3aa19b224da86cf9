"""What the audit trail adds to every evidence bundle, and how a bundle is checked against the database.

The bundle carries the chain segment covering its period (each link with its row's canonical text),
the signed checkpoints up to the one that anchors the segment's end, the signing public key, the
standalone verifier (``verify_bundle.py``) and a signature of ``manifest.json``. An auditor checks it
with ``python3 verify_bundle.py bundle.zip --fingerprint …``; the portal checks it, and that its
database still holds the same links, with ``manage.py verify_audit_chain --bundle bundle.zip``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

from ..reports.registry import BundlePart, Filters, register_bundle_part, register_manifest_signer
from . import checkpoints as cp
from . import offline_verifier
from .canonical import DATETIME_FORMAT, canonical_json
from .chain import GENESIS_HASH, chained_model
from .keys import public_key_fingerprint, public_key_pem, signing_key
from .models import ChainLink
from .services import seal_and_checkpoint

VERIFIER_NAME = "verify_bundle.py"
BATCH = 2000


def _segment_bounds(filters: Filters, anchor: cp.Checkpoint | None, valid: list[cp.Checkpoint]) -> tuple[int, int]:
    if anchor is None:
        return 1, 0
    first = 1
    if filters.start is not None:
        found = ChainLink.objects.filter(sealed_at__gte=filters.start, seq__lte=anchor.seq).order_by("seq").first()
        first = found.seq if found else anchor.seq + 1
    last = anchor.seq
    if filters.end is not None:
        before_end = ChainLink.objects.filter(sealed_at__lt=filters.end, seq__lte=anchor.seq).order_by("-seq").first()
        if before_end is not None:
            covering = [c.seq for c in valid if c.seq >= max(before_end.seq, first)]
            last = min(covering) if covering else anchor.seq
    return first, last


def _segment_lines(first: int, last: int) -> Iterator[bytes]:
    current = first
    while current <= last:
        links = list(ChainLink.objects.filter(seq__gte=current, seq__lte=last).order_by("seq")[:BATCH])
        if not links:
            return
        rows: dict[str, dict] = {}
        for label in {link.model_label for link in links}:
            entry = chained_model(label)
            ids = [link.object_id for link in links if link.model_label == label]
            rows[label] = entry.model._base_manager.in_bulk(ids) if entry else {}
        out = []
        for link in links:
            entry, row = chained_model(link.model_label), rows[link.model_label].get(link.object_id)
            text = canonical_json(entry.canonical(row)) if entry is not None and row is not None else None
            out.append(json.dumps({
                "seq": link.seq, "model": link.model_label, "id": link.object_id, "row": text,
                "row_digest": link.row_digest, "prev_hash": link.prev_hash, "entry_hash": link.entry_hash,
                "public_hash": link.public_hash, "key_id": link.key_id,
                "sealed_at": link.sealed_at.strftime(DATETIME_FORMAT),
            }, sort_keys=True, ensure_ascii=False) + "\n")
        yield "".join(out).encode()
        current = links[-1].seq + 1


def audit_bundle_part(filters: Filters) -> BundlePart:
    seal_and_checkpoint(force_checkpoint=True)
    # Only checkpoints of the current signing key: the one the bundle's verifier is pinned to.
    current = public_key_fingerprint()
    valid = [c for c in cp.read_all() if isinstance(c, cp.Checkpoint) and c.signing_key == current and c.verifies()]
    anchor = max(valid, key=lambda c: c.seq) if valid else None
    first, last = _segment_bounds(filters, anchor, valid)
    before = ChainLink.objects.filter(seq=first - 1).first()
    kept = [c for c in valid if c.seq <= last or c is anchor]
    manifest = {
        "segment": {
            "first_seq": first, "last_seq": last,
            "start_hash": before.entry_hash if before else GENESIS_HASH,
            "start_public_hash": before.public_hash if before else GENESIS_HASH,
        },
        "checkpoint": anchor.as_dict() if anchor else None,
        "signing_key_fingerprint": public_key_fingerprint(),
        "verify": f"python3 {VERIFIER_NAME} <this bundle>.zip --fingerprint {public_key_fingerprint()}",
    }
    files = [
        ("audit/chain-segment.jsonl", _segment_lines(first, last)),
        ("audit/checkpoints.jsonl", iter([("".join(c.line() + "\n" for c in kept)).encode()])),
        ("audit/signing-public-key.pem", iter([public_key_pem().encode()])),
        (VERIFIER_NAME, iter([Path(offline_verifier.__file__).read_bytes()])),
    ]
    return BundlePart(key="audit_chain", manifest=manifest, files=files)


def sign_manifest(manifest: bytes) -> tuple[str, bytes]:
    return offline_verifier.SIGNATURE, base64.b64encode(signing_key().sign(manifest))


register_bundle_part(audit_bundle_part)
register_manifest_signer(sign_manifest)


def compare_bundle_with_database(path: Path, report) -> None:
    """Verify ``path`` offline with the portal's own public key, then check that the database still
    holds the bundle's links unchanged and reaches at least as far (problems go into ``report``)."""
    result = offline_verifier.verify_bundle(path, public_key_pem=public_key_pem().encode())
    for kind, message in result.problems:
        report.add(kind, f"bundle {path.name}: {message}")
    if not result.segment:
        return
    seqs = [int(link["seq"]) for link in result.segment]
    stored = ChainLink.objects.filter(seq__gte=min(seqs), seq__lte=max(seqs)).in_bulk(field_name="seq")
    for link in result.segment:
        seq = int(link["seq"])
        here = stored.get(seq)
        if here is None:
            report.add("truncated" if seq > report.head_seq else "links_removed",
                       f"bundle {path.name}: link {seq} ({link['model']} #{link['id']}) is no longer in the database.",
                       seq)
        elif (here.model_label, here.object_id, here.entry_hash, here.public_hash) != (
            link["model"], int(link["id"]), link["entry_hash"], link["public_hash"]
        ):
            report.add("rewritten", f"bundle {path.name}: link {seq} differs from the one exported in the bundle: "
                       "the history was rewritten since.", seq)
    for item in result.checkpoints:
        checkpoint = cp.parse_line(json.dumps(item), source=f"{path.name}:{cp.FORMAT}")
        if checkpoint.seq > report.head_seq:
            report.add("truncated", f"bundle {path.name}: its checkpoint of {checkpoint.time} records link "
                       f"{checkpoint.seq}, beyond the chain's end ({report.head_seq}).")
