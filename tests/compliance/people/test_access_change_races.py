"""Two administrators approving (or one approving, one rejecting) the same access change at once, on
PostgreSQL with real threads: the row lock decides; exactly one decision is applied."""

import pytest
from django.db import connection

from compliance.models import AccessChange, PrivilegeChange
from compliance.people import access_changes
from compliance.people.roles import Role
from tests import factories
from tests.gate.test_races import _run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_decisions_on_one_access_change_apply_exactly_one(postgres):
    assert connection.vendor == "postgresql"
    requester = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True)
    deciders = [factories.UserFactory(username=f"admin{i}", roles=[Role.ADMINISTRATOR], is_staff=True)
                for i in range(4)]
    for round_number in range(5):
        person = factories.UserFactory(username=f"candidate{round_number}", roles=[Role.ENGINEER])
        change = access_changes.request_access_change(
            actor=requester, grant=access_changes.role_grant(person, str(Role.APPROVER)))
        calls = [
            (lambda d=d, i=i: (access_changes.approve_access_change if i % 2 == 0
                               else access_changes.reject_access_change)(actor=d, change=change, reason="race"))
            for i, d in enumerate(deciders)
        ]
        results, errors = _run_at_once(calls)
        assert len(results) == 1, (round_number, errors)
        assert errors == ["not_pending"] * 3, errors
        change.refresh_from_db()
        approved = change.status == "approved"
        assert person.groups.filter(name=str(Role.APPROVER)).exists() is approved
        assert PrivilegeChange.objects.filter(subject=person, kind="role_added").count() == int(approved)
        assert PrivilegeChange.objects.filter(kind="refused", code="not_pending", subject=person).count() == 3
    assert AccessChange.objects.filter(status="pending").count() == 0
