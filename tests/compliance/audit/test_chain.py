"""The tamper-evident audit trail: the hash chain, its verification, the daily alert, the PG triggers."""

from datetime import timedelta

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from compliance.audit import chain as audit_chain
from compliance.audit.tasks import verify_audit_chain
from compliance.audit.verify import verify_chain
from compliance.errors import RuleViolation
from compliance.models import ChainLink
from compliance.people.roles import Role
from deployments.models import Approval, RequestEvent
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(submit, approvers):
    """Some real history: requests submitted and approved through the services, all sealed."""
    for _ in range(3):
        factories.approve(submit(), approvers[0], comment="ok")
    audit_chain.seal_chain()
    return list(ChainLink.objects.order_by("seq"))


def middle(model, links):
    label = model._meta.label_lower
    ours = [link for link in links if link.model_label == label]
    return ours[len(ours) // 2]


def test_sealing_links_every_audit_entry_and_decision_record_once(history):
    labels = {link.model_label for link in history}
    assert {"auditlog.logentry", "deployments.approval", "deployments.requestevent"} <= labels
    assert ChainLink.objects.filter(model_label="deployments.approval").count() == Approval.objects.count()
    assert ChainLink.objects.filter(model_label="auditlog.logentry").count() == LogEntry.objects.count()
    assert [link.seq for link in history] == list(range(1, len(history) + 1))
    assert history[0].prev_hash == audit_chain.GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash for a, b in zip(history, history[1:], strict=False))
    assert audit_chain.seal_chain() == 0  # safe to run twice
    report = verify_chain()
    assert report.ok, report.summary()
    assert (report.head_seq, report.head_hash) == audit_chain.chain_head()


def test_new_entries_are_appended_after_the_head(history, submit):
    head_seq, head_hash = audit_chain.chain_head()
    submit()
    assert audit_chain.seal_chain() > 0
    first_new = ChainLink.objects.get(seq=head_seq + 1)
    assert first_new.prev_hash == head_hash
    assert verify_chain().ok


def test_it_detects_an_edited_middle_entry(history):
    link = middle(LogEntry, history)
    LogEntry.objects.filter(pk=link.object_id).update(changes_text="nothing to see here")
    report = verify_chain()
    assert not report.ok
    assert report.broken_seq == link.seq
    assert f"auditlog.logentry #{link.object_id} was changed after it was sealed" in report.problem
    # Verification goes on past the break: every other link still verifies.
    assert report.kinds == {"edited": 1}
    assert report.links_checked == len(history) and report.links_verified == len(history) - 1


def test_it_detects_an_edited_decision(history):
    link = middle(Approval, history)
    Approval.objects.filter(pk=link.object_id).update(comment="approved (edited later)")
    report = verify_chain()
    assert report.broken_seq == link.seq
    assert "deployments.approval" in report.problem and "changed" in report.problem


def test_it_detects_a_deleted_middle_entry(history):
    link = middle(RequestEvent, history)
    RequestEvent.objects.filter(pk=link.object_id).delete()
    report = verify_chain()
    assert report.broken_seq == link.seq
    assert report.problem == f"deployments.requestevent #{link.object_id} was deleted."


def test_it_detects_a_deleted_entry_whose_link_was_removed_too(history):
    link = middle(LogEntry, history)
    LogEntry.objects.filter(pk=link.object_id).delete()
    ChainLink.objects.filter(pk=link.pk).delete()
    report = verify_chain()
    assert report.broken_seq == link.seq
    assert "missing" in report.problem and "removed" in report.problem


def test_it_detects_reordered_middle_entries(history):
    """Swapping two entries' places in the chain breaks the link where the first one moved."""
    a, b = history[len(history) // 2], history[len(history) // 2 + 1]
    ChainLink.objects.filter(pk=a.pk).update(seq=10_000_000)
    ChainLink.objects.filter(pk=b.pk).update(seq=a.seq)
    ChainLink.objects.filter(pk=a.pk).update(seq=b.seq)
    report = verify_chain()
    assert report.broken_seq == a.seq
    assert "does not follow" in report.problem and "reordered" in report.problem


def test_it_detects_swapped_contents_of_two_entries(history):
    """Reordering rows by swapping their contents (keeping the ids) changes both hashes."""
    first, second = [link for link in history if link.model_label == "auditlog.logentry"][1:3]
    e1, e2 = LogEntry.objects.get(pk=first.object_id), LogEntry.objects.get(pk=second.object_id)
    LogEntry.objects.filter(pk=e1.pk).update(timestamp=e2.timestamp, object_repr=e2.object_repr)
    LogEntry.objects.filter(pk=e2.pk).update(timestamp=e1.timestamp, object_repr=e1.object_repr)
    report = verify_chain()
    assert report.broken_seq == first.seq


def test_it_detects_a_rewritten_link(history):
    link = middle(LogEntry, history)
    ChainLink.objects.filter(pk=link.pk).update(prev_hash="f" * 64)
    report = verify_chain()
    assert report.broken_seq == link.seq
    assert "previous hash does not match" in report.problem


def test_it_reports_old_entries_that_were_never_linked(history, submit):
    submit()
    assert verify_chain().ok  # recent: within the grace period
    later = timezone.now() + timedelta(hours=1)
    report = verify_chain(now=later)
    assert not report.ok and report.broken_seq is None
    assert report.unlinked_count > 0
    assert "not linked" in report.summary()


def test_the_command_reports_the_first_broken_link_and_exits_non_zero(history, capsys):
    call_command("verify_audit_chain")
    assert "Chain intact" in capsys.readouterr().out
    link = middle(LogEntry, history)
    LogEntry.objects.filter(pk=link.object_id).update(object_repr="forged")
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit_chain")
    assert f"BROKEN at link {link.seq}" in str(caught.value)


def test_the_command_can_seal_first(submit, capsys):
    submit()
    call_command("verify_audit_chain", "--seal")
    out = capsys.readouterr().out
    assert "Linked" in out and "Chain intact" in out


def test_writes_schedule_one_sealing_after_commit(submit, settings):
    from django.core.cache import cache

    settings.PORTAL_AUDIT_CHAIN_SEAL_ON_COMMIT = True
    submit()
    submit()
    hooks = [func for _, func, _ in connection.run_on_commit if getattr(func, "__name__", "") == "request_seal"]
    assert len(hooks) == 1  # one hook per transaction, however many chained rows it wrote
    cache.delete(audit_chain.SEAL_PENDING_KEY)
    hooks[0]()  # what the commit runs: queue the (debounced) sealing task; eager under tests
    assert ChainLink.objects.exists()
    assert verify_chain().ok
    assert not audit_chain.unlinked(audit_chain.chained_models()[0]).exists()


def test_the_daily_task_alerts_administrators_when_the_chain_is_broken(history, mailoutbox,
                                                                      django_capture_on_commit_callbacks):
    factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")
    factories.UserFactory(username="gone", roles=[Role.ADMINISTRATOR], email="gone@example.com", is_active=False)
    factories.UserFactory(username="frank", roles=[Role.AUDITOR], email="frank@example.com")
    with django_capture_on_commit_callbacks(execute=True):  # alerts go out after commit
        assert verify_audit_chain.delay().get() is True
    assert mailoutbox == []
    link = middle(Approval, history)
    Approval.objects.filter(pk=link.object_id).update(comment="rewritten")
    with django_capture_on_commit_callbacks(execute=True):
        assert verify_audit_chain.delay().get() is False
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["ada@example.com"]
    assert f"BROKEN at link {link.seq}" in message.body


# --- PostgreSQL triggers ------------------------------------------------------------------------


def _refused(sql, params=()):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.postgres
def test_postgres_refuses_changes_to_audit_tables(postgres, history, submit):
    with pytest.raises(RuleViolation):
        submit(sha="not-a-sha")  # a recorded refusal
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL portal.audit_maintenance = 'off'")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks: TRUNCATE reaches the trigger
        entry = LogEntry.objects.order_by("pk").first()
        approval = Approval.objects.order_by("pk").first()
        for table, pk in [
            ("auditlog_logentry", entry.pk),
            ("deployments_approval", approval.pk),
            ("deployments_requestevent", RequestEvent.objects.order_by("pk").first().pk),
            ("compliance_chainlink", history[0].pk),
        ]:
            _refused(f"UPDATE {table} SET id = id WHERE id = %s", [pk])  # noqa: S608
            _refused(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608
            _refused(f"TRUNCATE {table} CASCADE")
        _refused("DELETE FROM deployments_refusal")
        # Deleting a user sets LogEntry.actor to NULL: an UPDATE, refused (deactivate users instead).
        someone = factories.UserFactory(username="leaver")
        with set_actor(someone):
            factories.ServiceFactory()
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            someone.delete()
        # Appending still works.
        factories.UserFactory(username="still-audited")
    assert verify_chain().ok


@pytest.mark.postgres
def test_postgres_maintenance_setting_is_only_on_under_tests(postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('portal.audit_maintenance', true)")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sealers_running_at_once_build_one_valid_chain(postgres, submit, approvers):
    import threading

    from django.db import connections

    for _ in range(3):
        factories.approve(submit(), approvers[0], comment="ok")
    barrier = threading.Barrier(4)
    errors = []

    def seal():
        try:
            barrier.wait(timeout=30)
            audit_chain.seal_chain(batch_size=7)
        except Exception as exc:  # reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=seal) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    report = verify_chain()
    assert report.ok, report.summary()
    assert report.links_checked == ChainLink.objects.count() > 0
