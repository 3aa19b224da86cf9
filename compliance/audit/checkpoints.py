"""Signed checkpoints of the chain's head, kept outside the database.

After sealing, the portal appends a checkpoint — sequence number, keyed head hash, public head
hash, time, link count, chain key id, signing-key fingerprint, the hash of the previous checkpoint —
signed with the Ed25519 signing key, to a JSON-lines file per month under
``PORTAL_AUDIT_CHECKPOINT_DIR``. Someone who rewrites the chain (or cuts links off its end) in the
database cannot make it agree with a checkpoint without the signing key: verification compares the
chain with every checkpoint it is given. Checkpoints travel in every evidence bundle and are
e-mailed daily to auditors.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .canonical import DATETIME_FORMAT
from .chain import _take_sealer_lock
from .keys import public_key_fingerprint, sign, trusted_public_keys
from .models import ChainLink

logger = logging.getLogger(__name__)

FORMAT = "portal-audit-checkpoint/1"
SIGNED_FIELDS = ("format", "seq", "head_hash", "public_hash", "time", "count", "key_id", "signing_key", "prev")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    public_hash: str
    time: str
    count: int
    key_id: str
    signing_key: str
    prev: str | None
    signature: str
    source: str = ""  # where it was read from (file:line), for reports

    def signed_text(self) -> bytes:
        return signed_bytes(self.as_dict())

    def as_dict(self) -> dict:
        data = {name: getattr(self, name) for name in SIGNED_FIELDS if name != "format"}
        return {"format": FORMAT, **data, "signature": self.signature}

    def line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.line().encode()).hexdigest()

    def verifies(self, key: Ed25519PublicKey | None = None) -> bool:
        """Signed by ``key``, or by the trusted key its ``signing_key`` fingerprint names."""
        key = key or trusted_public_keys().get(self.signing_key)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(self.signature), self.signed_text())
        except (InvalidSignature, ValueError):
            return False
        return True


def signed_bytes(data: dict) -> bytes:
    """What the signature covers: the signed fields as sorted, compact JSON."""
    return json.dumps({k: data.get(k) for k in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":")).encode()


class CheckpointError(ValueError):
    """A checkpoint line that cannot be read: what is wrong, and where."""


def parse_line(text: str, *, source: str = "") -> Checkpoint:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a portal audit checkpoint")
    try:
        return Checkpoint(
            seq=int(data["seq"]), head_hash=str(data["head_hash"]), public_hash=str(data["public_hash"]),
            time=str(data["time"]), count=int(data["count"]), key_id=str(data["key_id"]),
            signing_key=str(data["signing_key"]), prev=data.get("prev"), signature=str(data["signature"]),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: missing or malformed field {exc}") from None


def read_lines(lines: Iterable[str], *, source: str) -> Iterator[Checkpoint | CheckpointError]:
    """Every checkpoint in ``lines``; an unreadable line is yielded as its error, never skipped."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield parse_line(line, source=f"{source}:{number}")
            except CheckpointError as exc:
                yield exc


def read_file(path: Path) -> list[Checkpoint | CheckpointError]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [CheckpointError(f"{path}: cannot be read ({exc})")]
    return list(read_lines(text.splitlines(), source=str(path)))


def checkpoint_dir() -> Path:
    return Path(settings.PORTAL_AUDIT_CHECKPOINT_DIR)


def checkpoint_files() -> list[Path]:
    directory = checkpoint_dir()
    return sorted(directory.glob("checkpoints-*.jsonl")) if directory.is_dir() else []


def read_all() -> list[Checkpoint | CheckpointError]:
    found: list[Checkpoint | CheckpointError] = []
    for path in checkpoint_files():
        found.extend(read_file(path))
    return found


def latest() -> Checkpoint | None:
    for path in reversed(checkpoint_files()):
        for item in reversed(read_file(path)):
            if isinstance(item, Checkpoint):
                return item
    return None


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


def record_checkpoint(*, force: bool = False, now: datetime | None = None) -> Checkpoint | None:
    """Sign the current head and append it to this month's checkpoint file.

    Skipped (returns the latest) when the head has not moved, or, unless ``force``, when the latest
    checkpoint is younger than ``PORTAL_AUDIT_CHECKPOINT_INTERVAL_SECONDS``. Runs after the sealing
    transaction committed, so a checkpoint never names a link that could still roll back.
    """
    now = now or timezone.now()
    previous = latest()
    if previous is not None and not force:
        age = now - datetime.strptime(previous.time, DATETIME_FORMAT).replace(tzinfo=UTC)
        if age < timedelta(seconds=settings.PORTAL_AUDIT_CHECKPOINT_INTERVAL_SECONDS):
            return previous
    with transaction.atomic():
        _take_sealer_lock()  # the head cannot move while it is read
        head = ChainLink.objects.order_by("-seq").first()
    unchanged = previous is not None and (previous.seq, previous.head_hash) == (head.seq if head else 0,
                                                                              head.entry_hash if head else "")
    if head is None or (unchanged and previous.signing_key == public_key_fingerprint()):
        return previous  # (after a signing-key rotation the same head is signed again, with the new key)
    data = {
        "format": FORMAT, "seq": head.seq, "head_hash": head.entry_hash, "public_hash": head.public_hash,
        "time": _format_time(now), "count": ChainLink.objects.filter(seq__lte=head.seq).count(),
        "key_id": head.key_id, "signing_key": public_key_fingerprint(),
        "prev": previous.digest() if previous is not None else None,
    }
    checkpoint = Checkpoint(**{k: v for k, v in data.items() if k != "format"}, signature=sign(signed_bytes(data)))
    _append(checkpoint, now)
    return checkpoint


def _append(checkpoint: Checkpoint, now: datetime) -> None:
    directory = checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoints-{now.astimezone(UTC):%Y-%m}.jsonl"
    # Append-only, one line per write, serialized between processes on this host.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
