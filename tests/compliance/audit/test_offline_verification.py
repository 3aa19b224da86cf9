"""Offline verification of evidence bundles: the standalone verifier shipped in every bundle, run as
an auditor would (its own process, only the standard library and ``cryptography``), and the portal's
``verify_audit_chain --bundle``."""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.urls import reverse

from compliance.audit.keys import public_key_fingerprint
from compliance.models import ChainLink
from compliance.people.roles import Role
from deployments.models import Approval
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def bundle(client, submit, approvers, tmp_path):
    for _ in range(2):
        factories.approve(submit(), approvers[0], comment="ok")
    client.force_login(factories.UserFactory(username="audrey", roles=[Role.AUDITOR]))
    response = client.get(reverse("reports:bundle"))
    assert response.status_code == 200
    path = tmp_path / "bundle.zip"
    path.write_bytes(b"".join(response.streaming_content))
    return path


def run_verifier(bundle_path: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Extract verify_bundle.py from the bundle itself and run it outside the portal."""
    with zipfile.ZipFile(bundle_path) as archive:
        script = tmp_path / "verify_bundle.py"
        script.write_bytes(archive.read("verify_bundle.py"))
    return subprocess.run([sys.executable, "-I", str(script), str(bundle_path), *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def rewrite(bundle_path: Path, target: Path, *, change: dict) -> Path:
    """Copy the bundle, replacing members with ``change[name](bytes) -> bytes``."""
    with zipfile.ZipFile(bundle_path) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            out.writestr(item.filename, change[item.filename](data) if item.filename in change else data)
    return target


def test_the_verifier_accepts_a_real_bundle_with_the_pinned_key(bundle, tmp_path):
    result = run_verifier(bundle, "--fingerprint", public_key_fingerprint(), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Signing key pinned by fingerprint" in result.stdout and "OK:" in result.stdout
    links = ChainLink.objects.count()
    assert f"{links} chain links" in result.stdout


def test_the_bundle_carries_the_chain_segment_checkpoints_key_and_verifier(bundle):
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
        segment = [json.loads(line) for line in archive.read("audit/chain-segment.jsonl").splitlines()]
    assert {"audit/chain-segment.jsonl", "audit/checkpoints.jsonl", "audit/signing-public-key.pem",
            "verify_bundle.py", "manifest.json.sig"} <= names
    section = manifest["audit_chain"]
    assert section["segment"]["first_seq"] == 1 and section["segment"]["last_seq"] == ChainLink.objects.count()
    assert section["checkpoint"]["seq"] == section["segment"]["last_seq"]
    assert section["signing_key_fingerprint"] == public_key_fingerprint()
    assert [link["seq"] for link in segment] == list(range(1, len(segment) + 1))
    assert {"deployments.approval", "auditlog.logentry"} <= {link["model"] for link in segment}


def test_without_a_pinned_key_the_verifier_says_so(bundle, tmp_path):
    result = run_verifier(bundle, tmp_path=tmp_path)
    assert result.returncode == 0 and "NOT pinned" in result.stdout


def _edit_segment_row(data: bytes) -> bytes:
    lines = data.decode().splitlines()
    for index, line in enumerate(lines):
        link = json.loads(line)
        if link["model"] == "deployments.approval":
            row = json.loads(link["row"])
            row["comment"] = "approved (edited in the bundle)"
            link["row"] = json.dumps(row, sort_keys=True, separators=(",", ":"))
            lines[index] = json.dumps(link, sort_keys=True)
            break
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("member", "change", "kind"),
    [
        ("audit/chain-segment.jsonl", _edit_segment_row, "[file_changed]"),
        ("approvals.csv", lambda data: data.replace(b"ok", b"OK", 1), "[file_changed]"),
        ("manifest.json", lambda data: data.replace(b'"generated_by": "audrey"', b'"generated_by": "someone"'),
         "[manifest_signature]"),
    ],
)
def test_the_verifier_rejects_a_changed_bundle(bundle, tmp_path, member, change, kind):
    with zipfile.ZipFile(bundle) as archive:
        if member not in archive.namelist():
            member = next(name for name in archive.namelist() if name.endswith(".csv"))
    changed = rewrite(bundle, tmp_path / "changed.zip", change={member: change})
    result = run_verifier(changed, "--fingerprint", public_key_fingerprint(), tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout
    assert kind in result.stdout


def test_a_bundle_whose_segment_and_manifest_were_both_rewritten_still_fails(bundle, tmp_path):
    """Re-hashing the changed segment into the manifest breaks the manifest's signature, and the
    segment's public chain no longer reaches the signed checkpoint."""
    import hashlib

    with zipfile.ZipFile(bundle) as archive:
        segment = _edit_segment_row(archive.read("audit/chain-segment.jsonl"))
        manifest = json.loads(archive.read("manifest.json"))
    for item in manifest["files"]:
        if item["name"] == "audit/chain-segment.jsonl":
            item.update(sha256=hashlib.sha256(segment).hexdigest(), bytes=len(segment))
    changed = rewrite(bundle, tmp_path / "changed.zip", change={
        "audit/chain-segment.jsonl": lambda _: segment,
        "manifest.json": lambda _: json.dumps(manifest, indent=2, sort_keys=True).encode(),
    })
    result = run_verifier(changed, "--fingerprint", public_key_fingerprint(), tmp_path=tmp_path)
    assert result.returncode == 1
    assert "[manifest_signature]" in result.stdout and "[edited]" in result.stdout


def test_the_verifier_rejects_a_forged_checkpoint_signature_and_a_substituted_key(bundle, tmp_path):
    other = Ed25519PrivateKey.generate()

    def forge(data: bytes) -> bytes:
        checkpoint = json.loads(data.decode().splitlines()[-1])
        checkpoint["public_hash"] = "0" * 64
        return (json.dumps(checkpoint, sort_keys=True) + "\n").encode()

    forged = rewrite(bundle, tmp_path / "forged.zip", change={"audit/checkpoints.jsonl": forge})
    result = run_verifier(forged, "--fingerprint", public_key_fingerprint(), tmp_path=tmp_path)
    assert result.returncode == 1 and "[checkpoint_signature]" in result.stdout
    # A forger who swaps in their own key is caught by the pinned fingerprint.
    pem = other.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    swapped = rewrite(bundle, tmp_path / "swapped.zip", change={"audit/signing-public-key.pem": lambda _: pem})
    result = run_verifier(swapped, "--fingerprint", public_key_fingerprint(), tmp_path=tmp_path)
    assert result.returncode == 1 and "[wrong_key]" in result.stdout


def test_the_verifier_reports_an_unreadable_bundle(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    script = tmp_path / "verify_bundle.py"
    from compliance.audit import offline_verifier

    script.write_bytes(Path(offline_verifier.__file__).read_bytes())
    result = subprocess.run([sys.executable, "-I", str(script), str(junk)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "[unreadable]" in result.stdout


def test_the_portal_checks_a_bundle_against_its_database(bundle, tmp_path):
    call_command("verify_audit_chain", "--bundle", str(bundle))
    approval = Approval.objects.order_by("pk").first()
    link = ChainLink.objects.get(model_label="deployments.approval", object_id=approval.pk)
    # An insider rewrites that link after the bundle was handed to the auditors.
    ChainLink.objects.filter(pk=link.pk).update(entry_hash="e" * 64)
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit_chain", "--bundle", str(bundle))
    assert f"link {link.seq} differs from the one exported in the bundle" in str(caught.value)


def test_a_period_bundle_exports_a_segment_anchored_by_a_checkpoint(client, submit, approvers):
    from django.utils import timezone

    factories.approve(submit(), approvers[0], comment="ok")
    client.force_login(factories.UserFactory(username="audrey", roles=[Role.AUDITOR]))
    today = timezone.localdate().isoformat()
    response = client.get(reverse("reports:bundle"), {"from": today, "to": today})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(archive.read("manifest.json"))
    checkpoints = [json.loads(line) for line in archive.read("audit/checkpoints.jsonl").splitlines()]
    assert manifest["audit_chain"]["segment"]["last_seq"] in {c["seq"] for c in checkpoints}
