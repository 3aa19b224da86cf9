"""Health, sign-in throttling, the request page's 404 for outsiders, and the admin's guarantees."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from compliance.people.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db


def test_healthz_is_liveness_and_touches_neither_database_nor_broker(client, settings, django_assert_num_queries):
    # readiness (database, broker, migrations, beat) is /readyz: tests/portal/test_health.py
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}


def test_sign_in_is_throttled_after_repeated_failures(client):
    factories.UserFactory(username="mallory-target")
    for _ in range(4):
        response = client.post(reverse("login"), {"username": "mallory-target", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(reverse("login"), {"username": "mallory-target", "password": "wrong"})
    assert response.status_code == 429
    # locked out: even the right password is refused until the cool-off ends
    response = client.post(reverse("login"), {"username": "mallory-target", "password": "correct-horse-battery"})
    assert response.status_code == 429


def test_sign_in_works_and_pages_need_it(client):
    assert client.get("/").status_code == 302
    factories.UserFactory(username="ok-user")
    response = client.post(reverse("login"), {"username": "ok-user", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_the_request_page_is_404_for_an_outsider_and_visible_to_those_involved(client, submit, approvers, requester):
    request = submit()
    url = reverse("deployments:request_detail", args=[request.pk])
    outsider = factories.engineer()  # an engineer, but not for this environment
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.get(reverse("deployments:request_detail", args=[99999])).status_code == 404
    for person in (requester, approvers[0], factories.UserFactory(roles=[Role.AUDITOR])):
        client.force_login(person)
        response = client.get(url)
        assert response.status_code == 200
        assert request.sha in response.content.decode()


def test_audit_entries_can_be_neither_changed_nor_deleted_in_the_admin(client, environment):
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    entry = LogEntry.objects.first()
    assert entry is not None
    change_url = reverse("admin:auditlog_logentry_change", args=[entry.pk])
    assert client.get(change_url).status_code == 200
    assert client.post(change_url, {"action": 0}).status_code == 403
    delete_url = reverse("admin:auditlog_logentry_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk).exists()


def test_an_auditor_reads_the_admin_but_changes_nothing(client, submit):
    request = submit()
    auditor = factories.UserFactory(roles=[Role.AUDITOR], is_staff=True)
    client.force_login(auditor)
    assert client.get(reverse("admin:deployments_deploymentrequest_changelist")).status_code == 200
    assert client.get(reverse("admin:deployments_environment_changelist")).status_code == 200
    env_url = reverse("admin:deployments_environment_change", args=[request.environment.pk])
    response = client.post(env_url, {"name": "renamed"})
    assert response.status_code == 403
    assert client.get(reverse("admin:deployments_service_add")).status_code == 403
    request.environment.refresh_from_db()
    assert request.environment.name == "staging"


def test_an_engineer_has_no_admin(client):
    client.force_login(factories.engineer())
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302  # to the admin login: not staff
