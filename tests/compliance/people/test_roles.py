"""The role predicates, in one place: who administers, who oversees everything."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from compliance.people.roles import Role, administers, oversees_everything
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("roles", "flags", "expected_administers", "expected_oversees"),
    [
        ([Role.ADMINISTRATOR], {}, True, True),
        ([Role.AUDITOR], {}, False, True),
        ([], {"is_superuser": True}, True, True),
        ([Role.ENGINEER], {}, False, False),
        ([Role.APPROVER], {}, False, False),
        ([], {"is_staff": True}, False, False),
        ([Role.ADMINISTRATOR], {"is_active": False}, False, False),
        ([Role.AUDITOR], {"is_active": False}, False, False),
        ([], {"is_superuser": True, "is_active": False}, False, False),
    ],
)
def test_role_predicates(roles, flags, expected_administers, expected_oversees):
    person = factories.UserFactory(roles=roles, trained=False, **flags)
    person.refresh_from_db()
    assert administers(person) is expected_administers
    assert oversees_everything(person) is expected_oversees


def test_nobody_signed_in_neither_administers_nor_oversees():
    assert administers(AnonymousUser()) is False
    assert oversees_everything(AnonymousUser()) is False
    assert administers(None) is False
    assert oversees_everything(None) is False
