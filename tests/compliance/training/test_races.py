"""The enforcement job run twice at the same moment on PostgreSQL: one reminder, one suspension."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from compliance.models import Attestation, Suspension, TrainingReminder
from compliance.training import enforcement
from tests import factories
from tests.gate.test_races import _run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_enforcement_jobs_at_once_send_one_reminder_and_suspend_once(postgres, settings):
    settings.PORTAL_TRAINING_SUSPEND_AFTER_DAYS = 7
    people = [factories.approver(email=f"late{i}@example.com") for i in range(3)]
    expired = timezone.now() - timedelta(days=30)
    Attestation.objects.filter(user__in=people, course__slug="deployment-approver").update(
        attested_at=expired - timedelta(days=365), expires_at=expired
    )
    for person in people:
        person.role_assignments.update(assigned_at=expired - timedelta(days=400))
    mail.outbox.clear()
    now = timezone.now()
    results, errors = _run_at_once([lambda: enforcement.enforce_training(actor=None, now=now)] * 4)
    assert errors == []
    assert sum(r["suspended"] for r in results) == 3
    assert Suspension.objects.filter(lifted_at__isnull=True).count() == 3
    assert TrainingReminder.objects.count() == 3
    assert sorted(m.to[0] for m in mail.outbox) == [f"late{i}@example.com" for i in range(3)]
