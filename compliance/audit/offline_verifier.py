#!/usr/bin/env python3
"""Verify a deployment portal evidence bundle on your own machine, without the portal.

    python3 verify_bundle.py BUNDLE.zip --fingerprint <the signing key fingerprint you were given>
    python3 verify_bundle.py BUNDLE.zip --public-key signing-public-key.pem

Needs Python 3.9+ and the ``cryptography`` package (``pip install cryptography``); nothing else.

It checks, and reports every problem it finds (exit status 1 when there is any):
1. ``manifest.json`` carries a valid Ed25519 signature (``manifest.json.sig``) of the portal's
   signing key — pin that key with ``--fingerprint`` or ``--public-key`` from a source you trust
   (the daily checkpoint e-mail, the monitoring page, your audit file); otherwise the key shipped in
   the bundle is used and the result says the key was not pinned;
2. every file has the SHA-256 and size the manifest lists, and no file is unlisted;
3. every checkpoint in ``audit/checkpoints.jsonl`` is signed by that key;
4. the chain segment ``audit/chain-segment.jsonl``: each row's SHA-256 matches its link, the links
   follow each other (sequence numbers, previous hashes), each public hash is the SHA-256 of the
   previous one and the row — so a changed, removed, inserted or reordered row cannot reach the
   same end — and the links at checkpointed sequence numbers match the signed checkpoints, the last
   one included.

The keyed hashes (HMAC with the portal's chain key) cannot be checked without that key; the portal's
``manage.py verify_audit_chain --bundle`` checks those too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import zipfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CHECKPOINT_FORMAT = "portal-audit-checkpoint/1"
SIGNED_FIELDS = ("format", "seq", "head_hash", "public_hash", "time", "count", "key_id", "signing_key", "prev")
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SEGMENT = "audit/chain-segment.jsonl"
CHECKPOINTS = "audit/checkpoints.jsonl"
PUBLIC_KEY = "audit/signing-public-key.pem"


class Result:
    def __init__(self):
        self.problems: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.segment: list[dict] = []
        self.checkpoints: list[dict] = []
        self.manifest: dict = {}

    def add(self, kind: str, message: str) -> None:
        self.problems.append((kind, message))

    @property
    def ok(self) -> bool:
        return not self.problems


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def public_link_hash(prev_public: str, label: str, pk: int, row_digest: str) -> str:
    return hashlib.sha256(f"{prev_public}\n{label}\n{pk}\n{row_digest}".encode()).hexdigest()


def checkpoint_signed_bytes(data: dict) -> bytes:
    return json.dumps({k: data.get(k) for k in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def _verify(key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_bundle(path, *, public_key_pem: bytes | None = None, expected_fingerprint: str | None = None) -> Result:
    result = Result()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        result.add("unreadable", f"{path} is not a readable ZIP file: {exc}")
        return result
    with archive:
        names = set(archive.namelist())
        key = _pinned_key(result, archive, names, public_key_pem, expected_fingerprint)
        manifest_bytes = _read(result, archive, names, MANIFEST)
        if manifest_bytes is not None:
            _check_manifest(result, archive, names, manifest_bytes, key)
        _check_checkpoints(result, archive, names, key)
        _check_segment(result, archive, names)
    return result


def _read(result: Result, archive, names, name: str) -> bytes | None:
    if name not in names:
        result.add("missing_file", f"{name} is not in the bundle")
        return None
    try:
        return archive.read(name)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        result.add("unreadable", f"{name} cannot be read: {exc}")
        return None


def _pinned_key(result, archive, names, public_key_pem, expected_fingerprint):
    source = "the key given with --public-key"
    pem = public_key_pem
    if pem is None:
        pem = _read(result, archive, names, PUBLIC_KEY)
        source = f"the bundle's own {PUBLIC_KEY}"
    if pem is None:
        return None
    try:
        key = load_public_key(pem)
    except (ValueError, TypeError) as exc:
        result.add("bad_public_key", f"{source} is not an Ed25519 public key in PEM form: {exc}")
        return None
    actual = fingerprint(key)
    if expected_fingerprint:
        if actual != expected_fingerprint.strip().lower():
            result.add("wrong_key", f"{source} has fingerprint {actual}, not the pinned {expected_fingerprint}")
            return None
        result.notes.append(f"Signing key pinned by fingerprint {actual}.")
    elif public_key_pem is not None:
        result.notes.append(f"Signing key pinned by the given PEM file (fingerprint {actual}).")
    else:
        result.notes.append(
            f"WARNING: the signing key was NOT pinned; {source} was used (fingerprint {actual}). Compare that "
            "fingerprint with one you received from the portal another way, or pass --fingerprint."
        )
    return key


def _check_manifest(result, archive, names, manifest_bytes, key) -> None:
    signature = _read(result, archive, names, SIGNATURE)
    if key is not None and signature is not None and not _verify(key, signature.decode(errors="replace").strip(),
                                                                 manifest_bytes):
        result.add("manifest_signature", "manifest.json does not carry a valid signature of the signing key: "
                   "the manifest was changed or forged")
    try:
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        result.add("malformed", f"manifest.json cannot be read: {exc}")
        return
    result.manifest = manifest
    listed = set()
    for item in files:
        try:
            name, expected, size = item["name"], item["sha256"], int(item["bytes"])
        except (KeyError, TypeError, ValueError) as exc:
            result.add("malformed", f"a manifest entry cannot be read: {exc}")
            continue
        listed.add(name)
        data = _read(result, archive, names, name)
        if data is None:
            continue
        if hashlib.sha256(data).hexdigest() != expected or len(data) != size:
            result.add("file_changed", f"{name} does not match its SHA-256 or size in the manifest")
    for name in sorted(names - listed - {MANIFEST, SIGNATURE}):
        result.add("unlisted_file", f"{name} is in the bundle but not in the manifest")


def _check_checkpoints(result, archive, names, key) -> None:
    data = _read(result, archive, names, CHECKPOINTS)
    if data is None:
        return
    for number, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{CHECKPOINTS}:{number}"
        try:
            checkpoint = json.loads(line)
            if checkpoint.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("not a portal audit checkpoint")
            seq, signature = int(checkpoint["seq"]), checkpoint["signature"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            result.add("checkpoint_unreadable", f"{where}: {exc}")
            continue
        if key is not None and not _verify(key, signature, checkpoint_signed_bytes(checkpoint)):
            result.add("checkpoint_signature", f"{where} (link {seq}) is not validly signed: forged or altered")
            continue
        result.checkpoints.append(checkpoint)


def _check_segment(result, archive, names) -> None:
    data = _read(result, archive, names, SEGMENT)
    if data is None:
        return
    start = result.manifest.get("audit_chain", {}).get("segment", {}) if result.manifest else {}
    prev = start.get("start_hash")
    prev_public = start.get("start_public_hash")
    expected_seq = start.get("first_seq")
    by_seq = {int(c["seq"]): c for c in result.checkpoints}
    last = None
    for number, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            link = json.loads(line)
            seq, label, pk = int(link["seq"]), str(link["model"]), int(link["id"])
            row, row_digest = link["row"], link["row_digest"]
            json.loads(row)
        except (ValueError, KeyError, TypeError) as exc:
            result.add("malformed", f"{SEGMENT}:{number} cannot be read: {exc}")
            continue
        where = f"link {seq} ({label} #{pk})"
        if expected_seq is not None and seq != expected_seq:
            result.add("links_removed", f"{where}: expected link {expected_seq} next: links were removed or added")
        if prev is not None and link.get("prev_hash") != prev:
            result.add("reordered", f"{where} does not follow the previous link (reordered or replaced)")
        if hashlib.sha256(row.encode()).hexdigest() != row_digest:
            result.add("edited", f"{where}: the row does not match its digest: the row was changed")
        public = public_link_hash(prev_public, label, pk, row_digest) if prev_public is not None else None
        if public is not None and public != link.get("public_hash"):
            result.add("public_hash", f"{where}: its public hash does not follow the previous link's")
        checkpoint = by_seq.get(seq)
        if checkpoint is not None and (checkpoint["public_hash"], checkpoint["head_hash"]) != (
            link.get("public_hash"), link.get("entry_hash")
        ):
            result.add("rewritten", f"{where} differs from the signed checkpoint of {checkpoint.get('time')}")
        prev, prev_public, expected_seq = link.get("entry_hash"), link.get("public_hash"), seq + 1
        result.segment.append(link)
        last = seq
    if last is None:
        if start.get("first_seq") not in (None, 0) and start.get("last_seq"):
            result.add("missing_links", "the chain segment is empty although the manifest lists links")
        return
    if start.get("last_seq") is not None and last != start.get("last_seq"):
        result.add("truncated", f"the segment ends at link {last}, the manifest says {start.get('last_seq')}")
    if last not in by_seq:
        result.add("not_anchored", f"the segment's last link {last} is not covered by a signed checkpoint")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="the evidence bundle (.zip)")
    parser.add_argument("--public-key", help="the portal's signing public key (PEM) you trust")
    parser.add_argument("--fingerprint", help="the SHA-256 fingerprint of the signing key you trust")
    args = parser.parse_args(argv)
    pem = None
    if args.public_key:
        try:
            with open(args.public_key, "rb") as handle:
                pem = handle.read()
        except OSError as exc:
            print(f"FAILED: cannot read {args.public_key}: {exc}")
            return 2
    result = verify_bundle(args.bundle, public_key_pem=pem, expected_fingerprint=args.fingerprint)
    for note in result.notes:
        print(note)
    segment = f"{len(result.segment)} chain links, {len(result.checkpoints)} signed checkpoints"
    if result.ok:
        print(f"OK: {args.bundle} verifies: manifest signature, file hashes, {segment}.")
        return 0
    print(f"FAILED: {len(result.problems)} problem(s) in {args.bundle} ({segment} read):")
    for kind, message in result.problems:
        print(f"  [{kind}] {message}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
