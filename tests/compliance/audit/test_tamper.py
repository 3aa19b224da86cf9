"""Tampering by a database insider, one test per kind: each makes verification fail and name it.

The insider here has the database (SQL, the suite's maintenance switch standing in for a DBA's
powers) but not the portal's keys. On PostgreSQL (CI) the same SQL runs against the real triggers."""

import hashlib
import hmac
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from compliance.audit import checkpoints
from compliance.audit.chain import GENESIS_HASH, chained_model, public_link_hash, seal_chain
from compliance.audit.services import seal_and_checkpoint
from compliance.audit.verify import verify_chain
from compliance.models import ChainLink, ChainTag, ForgedEntry
from compliance.people.roles import Role
from deployments.choices import ExecutionStatus, RequestStatus
from deployments.gate import services
from deployments.models import Approval, DeploymentRequest, Execution
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(submit, approvers, requester, environment):
    """A full life: approved and deployed, rejected, cancelled; sealed and checkpointed."""
    deployed = factories.approve(submit(), approvers[0], comment="ok").request
    services.report_execution(actor=requester, environment=environment, sha=deployed.sha,
                              status=ExecutionStatus.SUCCESS, request=deployed, external_id="run-1")
    rejected = submit()
    services.reject_request(actor=approvers[1], request=rejected, comment="not now")
    cancelled = submit()
    services.cancel_request(actor=requester, request=cancelled, reason="wrong sha")
    seal_and_checkpoint(force_checkpoint=True)
    return {"deployed": DeploymentRequest.objects.get(pk=deployed.pk), "rejected": rejected, "cancelled": cancelled}


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def insert_by_sql(instance, *, written_at=None):
    """A plain INSERT of every column, as an insider would write it: no model signals, so no
    write-time tag and no audit entry (``bulk_create`` sends none); then the time the insider
    chooses for it (``auto_now_add`` would have set now)."""
    model = type(instance)
    model.objects.bulk_create([instance])
    row = model.objects.order_by("-pk").first()
    stamp = "timestamp" if model is LogEntry else "created_at"
    if written_at is not None:
        sql(f"UPDATE {table(model)} SET {stamp} = %s WHERE id = %s", [written_at, row.pk])  # noqa: S608
    return model.objects.get(pk=row.pk)


def table(model):
    return connection.ops.quote_name(model._meta.db_table)


def kinds(report):
    return set(report.kinds)


def test_an_untouched_database_verifies_clean_after_a_full_scenario(scenario):
    report = verify_chain()
    assert report.ok, report.summary()
    assert report.links_verified == report.links_checked == ChainLink.objects.count() > 50
    assert report.checkpoints_checked >= 1 and report.latest_checkpoint.seq == report.head_seq
    assert report.states_replayed == DeploymentRequest.objects.count() + Execution.objects.count()
    assert "Chain intact" in report.summary()


def test_an_edited_decision_is_named(scenario):
    approval = Approval.objects.get(request=scenario["deployed"])
    sql(f"UPDATE {table(Approval)} SET comment = %s WHERE id = %s", ["approved (edited later)", approval.pk])  # noqa: S608
    report = verify_chain()
    assert kinds(report) == {"edited"}
    assert f"deployments.approval #{approval.pk} was changed after it was sealed" in report.problem


def test_a_deleted_entry_is_named(scenario):
    link = ChainLink.objects.filter(model_label="auditlog.logentry").order_by("seq")[5]
    sql(f"DELETE FROM {table(LogEntry)} WHERE id = %s", [link.object_id])  # noqa: S608
    report = verify_chain(replay_states=False)
    assert kinds(report) == {"deleted"} and report.broken_seq == link.seq


def test_reordered_links_are_named(scenario):
    a, b = ChainLink.objects.order_by("seq")[10:12]
    ChainLink.objects.filter(pk=a.pk).update(seq=10_000_000)
    ChainLink.objects.filter(pk=b.pk).update(seq=a.seq)
    ChainLink.objects.filter(pk=a.pk).update(seq=b.seq)
    report = verify_chain()
    assert "reordered" in kinds(report) and report.broken_seq == a.seq


def _recompute_without_the_key(from_seq: int) -> None:
    """What an insider can do without the key: recompute every digest and hash from ``from_seq`` on,
    with SHA-256 in place of the HMAC (or any key they invent)."""
    links = list(ChainLink.objects.filter(seq__gte=from_seq - 1).order_by("seq"))
    before, rest = (links[0], links[1:]) if from_seq > 1 else (None, links)
    prev = before.entry_hash if before else GENESIS_HASH
    prev_public = before.public_hash if before else GENESIS_HASH
    for link in rest:
        entry = chained_model(link.model_label)
        row_digest = entry.row_digest(entry.model._base_manager.get(pk=link.object_id))
        guessed = hmac.new(b"a key the insider made up", f"{prev}\n{link.model_label}\n{link.object_id}\n{row_digest}"
                           .encode(), hashlib.sha256).hexdigest()
        public = public_link_hash(prev_public, link.model_label, link.object_id, row_digest)
        ChainLink.objects.filter(pk=link.pk).update(row_digest=row_digest, prev_hash=prev, entry_hash=guessed,
                                                    public_hash=public)
        prev, prev_public = guessed, public


def test_history_rewritten_and_the_chain_recomputed_without_the_key_is_named(scenario):
    approval = Approval.objects.get(request=scenario["deployed"])
    link = ChainLink.objects.get(model_label="deployments.approval", object_id=approval.pk)
    sql(f"UPDATE {table(Approval)} SET comment = %s WHERE id = %s", ["forged approval", approval.pk])  # noqa: S608
    _recompute_without_the_key(link.seq)
    report = verify_chain()
    assert report.broken_seq == link.seq
    assert report.first.kind == "forged_link" and "without the portal's chain key" in report.problem
    assert report.kinds["forged_link"] == report.head_seq - link.seq + 1  # every recomputed link
    assert "rewritten" in kinds(report)  # and the signed checkpoint no longer matches


def test_a_truncated_tail_is_named(scenario):
    head_seq = ChainLink.objects.order_by("-seq").first().seq
    for link in ChainLink.objects.filter(seq__gt=head_seq - 3):
        entry = chained_model(link.model_label)
        sql(f"DELETE FROM {table(ChainLink)} WHERE id = %s", [link.pk])  # noqa: S608
        sql(f"DELETE FROM {table(entry.model)} WHERE id = %s", [link.object_id])  # noqa: S608
    report = verify_chain(replay_states=False)
    assert kinds(report) == {"truncated"}
    assert f"records link {head_seq}: links were removed from the end" in report.problem


def test_a_forged_insert_is_refused_by_the_sealer_reported_and_alerted(scenario, approvers, settings, mailoutbox,
                                                                     django_capture_on_commit_callbacks):
    factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")
    rejected = scenario["rejected"]
    long_ago = timezone.now() - timedelta(hours=2)
    # An approval for the rejected request and an audit entry for it, straight into the database.
    forged = insert_by_sql(Approval(request=rejected, approver=approvers[2], decision="approve", comment="lgtm"))
    entry = insert_by_sql(LogEntry(content_type_id=LogEntry.objects.first().content_type_id, object_pk=str(forged.pk),
                                   object_repr="forged", action=LogEntry.Action.CREATE), written_at=long_ago)
    # While its writer could still be committing (the tag grace period), an untagged row waits unlinked.
    with django_capture_on_commit_callbacks(execute=True):
        seal_and_checkpoint()  # the back-dated audit entry is refused at once
    assert not ChainLink.objects.filter(model_label="deployments.approval", object_id=forged.pk).exists()
    assert not ForgedEntry.objects.filter(model_label="deployments.approval").exists()
    sql(f"UPDATE {table(Approval)} SET created_at = %s WHERE id = %s", [long_ago, forged.pk])  # noqa: S608
    with django_capture_on_commit_callbacks(execute=True):
        seal_and_checkpoint()
    assert not ChainLink.objects.filter(model_label="deployments.approval", object_id=forged.pk).exists()
    recorded = ForgedEntry.objects.get(model_label="deployments.approval", object_id=forged.pk)
    assert "no write-time tag" in recorded.reason and recorded.alerted_at is not None
    assert ForgedEntry.objects.filter(model_label="auditlog.logentry", object_id=entry.pk).exists()
    assert len(mailoutbox) == 2
    assert f"auditlog.logentry #{entry.pk}" in mailoutbox[0].body
    assert f"deployments.approval #{forged.pk}" in mailoutbox[1].body
    report = verify_chain(replay_states=False)
    assert report.kinds == {"forged_insert": 2} and f"deployments.approval #{forged.pk}" in report.summary()
    # Alerted once, not at every sealing.
    with django_capture_on_commit_callbacks(execute=True):
        seal_and_checkpoint()
    assert len(mailoutbox) == 2


def test_a_forged_insert_with_a_copied_tag_or_a_future_time_is_refused_at_once(scenario, approvers):
    rejected = scenario["rejected"]
    genuine = ChainTag.objects.create(model_label="deployments.approval", object_id=0, key_id="x", tag="y")
    soon = timezone.now() + timedelta(days=1)
    forged = insert_by_sql(Approval(request=rejected, approver=approvers[2], decision="approve"), written_at=soon)
    ChainTag.objects.create(model_label="deployments.approval", object_id=forged.pk, key_id=genuine.key_id,
                            tag=genuine.tag)
    seal_chain()
    assert ForgedEntry.objects.get(object_id=forged.pk).reason.startswith("Its write-time tag does not verify")


@pytest.mark.parametrize(
    ("model", "column", "value", "field"),
    [
        ("request", "sha", "f" * 40, "sha"),
        ("request", "status", RequestStatus.APPROVED, "status"),
        ("execution", "authorized", False, "authorized"),
    ],
)
def test_a_direct_update_of_unchained_state_is_named(scenario, model, column, value, field):
    row = scenario["deployed"] if model == "request" else Execution.objects.get()
    if model == "request" and column == "status":
        row = scenario["rejected"]
    sql(f"UPDATE {table(type(row))} SET {column} = %s WHERE id = %s", [value, row.pk])  # noqa: S608
    report = verify_chain()
    assert kinds(report) == {"state_mismatch"}
    assert f"{type(row)._meta.label_lower} #{row.pk}: {field} is" in report.problem


def test_an_execution_flagged_then_marked_authorized_by_sql_is_named(scenario, requester, environment):
    stray = services.report_execution(actor=requester, environment=environment, sha=factories.sha(),
                                      status=ExecutionStatus.IN_PROGRESS, external_id="run-stray")
    assert not stray.authorized
    sql(f"UPDATE {table(Execution)} SET authorized = %s, flag_reason = '' WHERE id = %s", [True, stray.pk])  # noqa: S608
    report = verify_chain()
    assert kinds(report) == {"state_mismatch"}
    assert f"deployments.execution #{stray.pk}: authorized is True but its audit trail says False" in report.problem


def test_a_row_inserted_into_an_unchained_table_is_named(scenario, environment):
    insert_by_sql(Execution(environment=environment, sha="a" * 40, status=ExecutionStatus.SUCCESS,
                            external_id="run-x", authorized=True))
    report = verify_chain()
    assert kinds(report) == {"state_mismatch"} and "has no audit entry recording its creation" in report.problem


def test_verification_reports_every_problem_not_only_the_first(scenario):
    approval = Approval.objects.get(request=scenario["deployed"])
    sql(f"UPDATE {table(Approval)} SET comment = 'x' WHERE id = %s", [approval.pk])  # noqa: S608
    sql(f"UPDATE {table(Execution)} SET authorized = %s", [False])  # noqa: S608
    report = verify_chain()
    assert kinds(report) == {"edited", "state_mismatch"}
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit_chain")
    assert "FAILED: 2 problem(s)" in str(caught.value) and "edited 1" in str(caught.value)


# --- keys ---------------------------------------------------------------------------------------


def test_a_rotated_key_still_verifies_older_links_and_a_missing_one_is_named(scenario, settings, submit):
    old = settings.PORTAL_AUDIT_CHAIN_KEY
    settings.PORTAL_AUDIT_CHAIN_KEY = "a-new-chain-key-after-rotation-0123456789abcdef"
    settings.PORTAL_AUDIT_CHAIN_RETIRED_KEYS = old
    submit()
    seal_and_checkpoint(force_checkpoint=True)
    assert len(set(ChainLink.objects.values_list("key_id", flat=True))) == 2
    report = verify_chain()
    assert report.ok, report.summary()
    settings.PORTAL_AUDIT_CHAIN_RETIRED_KEYS = ""
    report = verify_chain()
    assert report.first.kind == "unknown_key" and "PORTAL_AUDIT_CHAIN_RETIRED_KEYS" in report.problem


# --- checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_kept_elsewhere_catches_a_truncation_after_the_local_ones_were_wiped(scenario, tmp_path):
    kept = tmp_path / "from-the-daily-email.jsonl"
    kept.write_text(checkpoints.latest().line() + "\n")
    head = ChainLink.objects.order_by("-seq").first()
    sql(f"DELETE FROM {table(ChainLink)} WHERE id = %s", [head.pk])  # noqa: S608
    for path in checkpoints.checkpoint_files():
        path.unlink()
    call_command("verify_audit_chain", "--grace-minutes", "10000")  # nothing local to compare with
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit_chain", "--checkpoint", str(kept))
    assert "[truncated]" in str(caught.value)


def test_bad_checkpoints_are_reported_with_what_they_are(scenario, tmp_path):
    latest = checkpoints.latest()
    forged = latest.line().replace(latest.public_hash, "0" * 64)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not json\n" + '{"format": "something else"}\n' + forged + "\n")
    report = verify_chain(checkpoints=checkpoints.read_file(bad))
    assert report.kinds == {"checkpoint_unreadable": 2, "checkpoint_signature": 1}
    missing = verify_chain(checkpoints=checkpoints.read_file(tmp_path / "nowhere.jsonl"))
    assert missing.kinds == {"checkpoint_unreadable": 1} and "cannot be read" in missing.problem


def test_checkpoints_are_signed_chained_and_written_at_most_once_a_minute(scenario, submit):
    first = checkpoints.latest()
    assert first.verifies() and first.seq == ChainLink.objects.count()
    submit()
    seal_and_checkpoint()  # the head moved, but the last checkpoint is not a minute old
    assert checkpoints.latest() == first
    second = checkpoints.record_checkpoint(now=timezone.now() + timedelta(minutes=2))
    assert second.seq > first.seq and second.prev == first.digest() and second.verifies()
    lines = [line for path in checkpoints.checkpoint_files() for line in path.read_text().splitlines()]
    assert lines[-2:] == [first.line(), second.line()]


def test_the_daily_checkpoint_goes_to_every_auditor(scenario, mailoutbox):
    from compliance.audit.tasks import email_audit_checkpoint

    factories.UserFactory(username="frank", roles=[Role.AUDITOR], email="frank@example.com")
    factories.UserFactory(username="gone", roles=[Role.AUDITOR], email="gone@example.com", is_active=False)
    assert email_audit_checkpoint.delay().get() == 1
    message = mailoutbox[-1]
    assert message.to == ["frank@example.com"]
    latest = checkpoints.latest()
    assert latest.line() in message.body and "DEVELOPMENT key" in message.body
    assert dict((name, content) for name, content, _ in message.attachments)["checkpoint.jsonl"] == latest.line() + "\n"


def test_young_untagged_rows_do_not_hold_up_the_sealing_of_genuine_ones(scenario, approvers, submit):
    rejected = scenario["rejected"]
    for approver in (approvers[0], approvers[2]):  # approvers[1] already rejected it
        insert_by_sql(Approval(request=rejected, approver=approver, decision="approve"))
    genuine = factories.approve(submit(), approvers[2], comment="ok")
    seal_chain(batch_size=2)
    assert ChainLink.objects.filter(model_label="deployments.approval", object_id=genuine.pk).exists()
    assert not ForgedEntry.objects.exists()  # still within the grace period: waiting, not yet forged


def test_a_pass_looks_back_a_window_and_a_full_pass_reaches_everything(scenario, approvers, submit, monkeypatch):
    """Rows commit slightly out of id order, so a pass starts a window below the newest linked row;
    a row older than that window is linked by the full pass the daily verification runs."""
    from compliance.audit import chain

    straggler = factories.approve(submit(), approvers[0], comment="committed late")
    newest = ChainLink.objects.filter(model_label="deployments.approval").order_by("-seq").first()
    ChainLink.objects.filter(pk=newest.pk).update(object_id=10_000_000)  # a linked row far above the straggler
    monkeypatch.setattr(chain, "SEAL_LOOKBACK_IDS", 5)
    seal_chain()
    assert not ChainLink.objects.filter(model_label="deployments.approval", object_id=straggler.pk).exists()
    seal_chain(full=True)
    assert ChainLink.objects.filter(model_label="deployments.approval", object_id=straggler.pk).exists()


def test_a_rotated_signing_key_keeps_older_checkpoints_valid_once_its_public_key_is_retired(scenario, settings,
                                                                                          submit):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from compliance.audit.keys import public_key_pem

    old_public = public_key_pem()
    settings.PORTAL_AUDIT_SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    submit()
    seal_and_checkpoint(force_checkpoint=True)
    report = verify_chain()
    assert report.kinds == {"checkpoint_signature": 1} and "PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS" in report.problem
    settings.PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS = old_public
    report = verify_chain()
    assert report.ok, report.summary()
    assert report.checkpoints_checked == 2
