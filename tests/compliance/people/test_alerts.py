"""One administrator alert: every active administrator with an address (plus whoever else is
concerned), after commit, with one subject prefix — whichever part of the portal raises it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from compliance.audit.tasks import verify_audit_chain
from compliance.monitoring.jobs import alert_late_jobs, expect_scheduled_jobs, scheduled_jobs
from compliance.people.alerts import SUBJECT_PREFIX, alert_administrators
from compliance.people.roles import Role
from compliance.violations.services import open_violation
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrators():
    factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")
    factories.UserFactory(username="gone", roles=[Role.ADMINISTRATOR], email="gone@example.com", is_active=False)
    factories.UserFactory(username="nomail", roles=[Role.ADMINISTRATOR], email="")
    factories.UserFactory(username="frank", roles=[Role.AUDITOR], email="frank@example.com")


def test_the_alert_goes_to_active_administrators_with_an_address_after_commit(
    administrators, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        recipients = alert_administrators("Something happened", "Details.", also_to=["owner@example.com", ""])
        assert mailoutbox == []  # nothing before the commit
    assert recipients == ["ada@example.com", "owner@example.com"]
    [message] = mailoutbox
    assert message.to == ["ada@example.com", "owner@example.com"]
    assert message.subject == f"{SUBJECT_PREFIX}Something happened"
    assert message.body == "Details."


def test_a_rolled_back_change_alerts_nobody(administrators, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        alert_administrators("Never sent", "The change was rolled back.")
        raise RuntimeError("rolled back")
    assert mailoutbox == []


def test_without_an_administrator_address_nothing_is_sent(mailoutbox, django_capture_on_commit_callbacks):
    factories.UserFactory(username="nomail", roles=[Role.ADMINISTRATOR], email="")
    with django_capture_on_commit_callbacks(execute=True):
        assert alert_administrators("Nobody to tell", "…") == []
    assert mailoutbox == []


def test_violations_jobs_and_the_audit_chain_alert_with_the_same_prefix(
    administrators, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_BEAT_SCHEDULE = {"seal": {"task": "compliance.seal_audit_chain", "schedule": 60.0}}
    with django_capture_on_commit_callbacks(execute=True):
        open_violation(kind="unauthorized_push", severity="high", title="push", evidence={}, dedup_key="p")
        expect_scheduled_jobs(now=timezone.now() - timedelta(hours=1))
        late = alert_late_jobs()  # the core's job, and those installed integrations registered
        assert 1 <= late <= len(scheduled_jobs())
    assert len(mailoutbox) == 2  # the violation, and one e-mail naming every late job
    assert all(m.subject.startswith(SUBJECT_PREFIX) for m in mailoutbox), [m.subject for m in mailoutbox]
    assert all(m.to == ["ada@example.com"] for m in mailoutbox)
    with django_capture_on_commit_callbacks(execute=True):
        assert verify_audit_chain.delay().get() is True  # intact: no alert
    assert len(mailoutbox) == 2  # the violation, and one e-mail naming every late job
