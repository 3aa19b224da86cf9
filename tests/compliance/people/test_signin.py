"""Sign-in records are evidence and password spraying is throttled per address."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from compliance.people.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db


def _sign_in(client, username, password="wrong-password", address="127.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_failures_for_many_usernames_from_one_address_lock_that_address_out(client, settings):
    settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT = 8
    factories.UserFactory(username="victim")
    for i in range(7):  # seven different usernames, one failure each: no username is near its limit of 5
        assert _sign_in(client, f"guess{i}").status_code == 200
    assert _sign_in(client, "guess7").status_code == 429  # the address reached its own limit
    # locked out as an address: even a right password for another person is refused
    assert _sign_in(client, "victim", "correct-horse-battery").status_code == 429
    # another address is not affected
    assert _sign_in(client, "victim", "correct-horse-battery", address="127.0.0.2").status_code == 302


def test_the_per_person_limit_is_unchanged(client, settings):
    settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT = 50
    for _ in range(4):
        assert _sign_in(client, "target").status_code == 200
    assert _sign_in(client, "target").status_code == 429
    assert _sign_in(client, "someone-else").status_code == 200  # the address is far from its limit


def test_signing_in_with_a_valid_account_does_not_reset_the_address_counter(client, settings):
    settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    factories.UserFactory(username="insider")
    for i in range(3):
        assert _sign_in(client, f"guess{i}").status_code == 200
    assert _sign_in(client, "insider", "correct-horse-battery").status_code == 302
    client.logout()
    for i in range(3, 5):
        assert _sign_in(client, f"guess{i}").status_code == 200
    assert _sign_in(client, "guess5").status_code == 429  # 6 failures from this address in all


def test_sign_in_records_cannot_be_deleted_from_the_admin_by_anyone(client):
    _sign_in(client, "nobody")
    factories.UserFactory(username="someone")
    _sign_in(client, "someone", "correct-horse-battery")
    client.logout()
    boss = factories.UserFactory(username="boss", is_superuser=True, is_staff=True)
    administrator = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True)
    for person in (boss, administrator):
        client.force_login(person)
        for model in (AccessAttempt, AccessLog, AccessFailureLog):
            row = model.objects.first()
            name = model._meta.model_name
            assert client.post(reverse(f"admin:axes_{name}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
            client.post(reverse(f"admin:axes_{name}_changelist"),
                        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
            assert model.objects.filter(pk=row.pk).exists()
    request = RequestFactory().get("/admin/")
    request.user = administrator
    assert "cleanup_expired_attempts" not in admin.site._registry[AccessAttempt].get_actions(request)
    request.user = boss  # expired counters only; every failure stays in the failure log
    assert "cleanup_expired_attempts" in admin.site._registry[AccessAttempt].get_actions(request)
