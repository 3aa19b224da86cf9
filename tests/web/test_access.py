"""Per-environment grants made visible: who may request or approve where, via which grant or group, and
whether it counts now — on a read-only page for administrators and auditors, on a person's and on an
environment's admin page; the permission admin offers the two gate permissions, labelled "Environment"."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from compliance.people.roles import Role
from compliance.people.suspensions import suspend_user
from deployments.gate import grants
from tests import factories

pytestmark = pytest.mark.django_db

ACCESS = reverse("deployments:access")


@pytest.fixture
def world(db):
    staging = factories.make_environment(name="staging")
    production = factories.make_environment(service=staging.service, name="production")
    erin = factories.approver(staging, username="erin")  # approves staging only, by a direct grant
    engineers = Group.objects.get(name=str(Role.ENGINEER))
    factories.grant(engineers, "request", staging)
    factories.grant(engineers, "request", production)
    rita = factories.engineer(username="rita")
    ursula = factories.approver(production, username="ursula", trained=False)
    return {"staging": staging, "production": production, "erin": erin, "rita": rita, "ursula": ursula}


def by_pair(rows):
    return {(a.user.username, a.environment.name): a for a in rows}


def test_grants_name_their_source_and_whether_they_count_now(world):
    rows = by_pair(grants.access_rows())
    erin = rows[("erin", "staging")]
    assert erin.may_approve and erin.approve_via == "direct grant" and not erin.may_request
    assert ("erin", "production") not in rows
    rita = rows[("rita", "production")]
    assert rita.may_request and rita.request_via == f"group {Role.ENGINEER}"
    ursula = rows[("ursula", "production")]
    assert not ursula.may_approve and ursula.approve_blocker  # untrained: granted, but not now
    suspend_user(actor=None, user=world["erin"], reason="Investigation")
    assert "suspend" in by_pair(grants.access_rows())[("erin", "staging")].approve_blocker.lower()


def test_the_access_page_is_for_administrators_and_auditors_only(client, world):
    client.force_login(world["rita"])
    assert client.get(ACCESS).status_code == 403
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    page = html.unescape(client.get(ACCESS).content.decode())
    assert "erin" in page and "direct grant" in page and f"group {Role.ENGINEER}" in page
    one = client.get(ACCESS, {"person": "erin"})
    assert [a.user.username for a in one.context["rows"]] == ["erin"]
    assert client.get(ACCESS, {"person": "nobody"}).status_code == 404


def test_a_persons_admin_page_shows_their_access_per_environment(client, world):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True, roles=[Role.ADMINISTRATOR]))
    page = html.unescape(client.get(reverse("admin:compliance_user_change", args=[world["erin"].pk])).content.decode())
    assert "Effective access" in page and "staging" in page and "direct grant" in page
    assert "production" not in page.split("Effective access", 1)[1].split("</fieldset>", 1)[0]


def test_an_environments_admin_page_shows_who_may_request_and_approve(client, world):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True, roles=[Role.ADMINISTRATOR]))
    url = reverse("admin:deployments_environment_change", args=[world["production"].pk])
    page = html.unescape(client.get(url).content.decode())
    section = page.split("Who may request and approve", 1)[1]
    assert "rita" in section and "ursula" in section and "not now" in section


def test_the_permission_admin_offers_the_two_gate_permissions_labelled_environment(client, world):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True, roles=[Role.ADMINISTRATOR]))
    response = client.get(reverse("admin:deployments_environmentuserobjectpermission_add"))
    form = response.context["adminform"].form
    assert form.fields["content_object"].label == "Environment"
    labels = sorted(label for value, label in form.fields["permission"].choices if value)
    assert labels == ["May approve deployments (approve_deployment)", "May request deployments (request_deployment)"]
    listing = client.get(reverse("admin:deployments_environmentuserobjectpermission_changelist")).content.decode()
    assert ">Environment<" in listing
