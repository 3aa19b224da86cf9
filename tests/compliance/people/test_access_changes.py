"""Four-eyes access changes: a privileged grant does nothing until a second administrator approves it;
the requester never approves; nobody approves a change that grants themselves; time-bound grants are
revoked by the periodic job. Through the real admin pages and the administrators' page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.models import AccessChange, AccessChangeStatus, PrivilegeChange
from compliance.people import access_changes
from compliance.people.identity import system_actor
from compliance.people.roles import Role
from compliance.tasks import expire_access_grants
from deployments.gate.permissions import can_act
from deployments.models import EnvironmentUserObjectPermission
from tests import factories
from tests.compliance.people.test_privileges import _change_form_data, _user_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada():
    """The administrator who requests."""
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True, email="ada@example.com")


@pytest.fixture
def otto():
    """A second administrator, who may approve."""
    return factories.UserFactory(username="otto", roles=[Role.ADMINISTRATOR], is_staff=True, email="otto@example.com")


@pytest.fixture
def boss():
    return factories.UserFactory(username="boss", is_superuser=True, is_staff=True, email="boss@example.com")


@pytest.fixture
def carol():
    """An engineer who is to become an approver."""
    return factories.UserFactory(username="carol", roles=[Role.ENGINEER], email="carol@example.com")


def _approve_permission():
    return Permission.objects.get(codename="approve_deployment")


def _decide(client, change, decision, reason="checked with her manager"):
    return client.post(reverse("compliance:access_change_decide", args=[change.pk]),
                       {"decision": decision, "reason": reason})


def test_a_role_granted_in_the_user_admin_does_nothing_until_a_second_administrator_approves(
        client, ada, otto, carol, django_capture_on_commit_callbacks):
    client.force_login(ada)
    data = _change_form_data(client, _user_url(carol))
    data["groups"] = [*data.get("groups", []), Group.objects.get(name=str(Role.APPROVER)).pk]
    data["access_reason"] = "joins the release rota"
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(_user_url(carol), data).status_code == 302
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()  # nothing granted yet
    assert carol.groups.filter(name=str(Role.ENGINEER)).exists()  # the rest of the form was saved
    change = AccessChange.objects.get(subject=carol)
    assert change.status == AccessChangeStatus.PENDING and change.requested_by == ada
    assert change.request_reason == "joins the release rota"
    assert any("otto@example.com" in m.to and "requested" in m.subject.lower() for m in mail.outbox)
    # the requester cannot approve it: refused and recorded
    response = _decide(client, change, "approve")
    assert response.status_code == 403
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()
    assert PrivilegeChange.objects.filter(kind="refused", actor=ada, code="own_access_change").exists()
    # the second administrator approves: now it takes effect, recorded as a role grant by otto
    client.force_login(otto)
    assert _decide(client, change, "approve").status_code == 302
    assert carol.groups.filter(name=str(Role.APPROVER)).exists()
    change.refresh_from_db()
    assert change.status == AccessChangeStatus.APPROVED and change.decided_by == otto
    assert change.decision_reason == "checked with her manager"
    assert PrivilegeChange.objects.filter(kind="role_added", subject=carol, actor=otto).exists()


def test_an_approve_permission_granted_in_the_admin_waits_and_a_rejection_grants_nothing(
        client, ada, otto, environment):
    dave = factories.UserFactory(username="dave", roles=[Role.APPROVER])
    client.force_login(ada)
    url = reverse("admin:deployments_environmentuserobjectpermission_add")
    response = client.post(url, {"content_object": environment.pk, "user": dave.pk,
                                 "permission": _approve_permission().pk, "expires_at": "", "reason": ""})
    assert response.status_code == 302
    assert not EnvironmentUserObjectPermission.objects.filter(user=dave).exists()
    assert not can_act(dave, "approve", environment)
    change = AccessChange.objects.get(subject=dave)
    assert change.target == str(environment) and change.privilege == "approve_deployment"
    client.force_login(otto)
    assert _decide(client, change, "reject", reason="").status_code == 400  # a reason is required
    change.refresh_from_db()
    assert change.status == AccessChangeStatus.PENDING
    assert _decide(client, change, "reject", reason="not on the rota").status_code == 302
    change.refresh_from_db()
    assert change.status == AccessChangeStatus.REJECTED
    assert not EnvironmentUserObjectPermission.objects.filter(user=dave).exists()
    assert PrivilegeChange.objects.filter(kind="access_rejected", subject=dave, actor=otto).exists()
    # a decided change cannot be decided again
    assert _decide(client, change, "approve").status_code == 409


def test_guardians_permission_page_turns_a_new_approve_tick_into_an_access_change(client, ada, otto, environment):
    dave = factories.UserFactory(username="dave", roles=[Role.APPROVER, Role.ENGINEER])
    client.force_login(ada)
    url = reverse("admin:deployments_environment_permissions_manage_user", args=[environment.pk, dave.pk])
    client.post(url, {"permissions": ["approve_deployment", "request_deployment"]})
    held = set(EnvironmentUserObjectPermission.objects.filter(user=dave).values_list("permission__codename",
                                                                                      flat=True))
    assert held == {"request_deployment"}  # the request permission is not watched: saved at once
    change = AccessChange.objects.get(subject=dave, status="pending")
    client.force_login(otto)
    _decide(client, change, "approve")
    assert can_act(dave, "approve", environment)


def test_staff_and_superuser_granted_by_a_superuser_wait_for_a_second_superuser(client, boss, otto, carol):
    second = factories.UserFactory(username="root2", is_superuser=True, is_staff=True)
    client.force_login(boss)
    data = _change_form_data(client, _user_url(carol))
    data["is_staff"] = "on"
    assert client.post(_user_url(carol), data).status_code == 302
    carol.refresh_from_db()
    assert carol.is_staff is False
    change = AccessChange.objects.get(subject=carol, flag="is_staff")
    # an administrator who is not a superuser may not decide a staff grant
    client.force_login(otto)
    assert _decide(client, change, "approve").status_code == 403
    assert PrivilegeChange.objects.filter(kind="refused", actor=otto, code="superuser_only").exists()
    client.force_login(second)
    assert _decide(client, change, "approve").status_code == 302
    carol.refresh_from_db()
    assert carol.is_staff is True
    assert PrivilegeChange.objects.filter(kind="flag_changed", subject=carol, actor=second).exists()


def test_nobody_approves_a_change_that_grants_themselves(ada, otto, boss):
    change = access_changes.request_access_change(actor=boss, grant=access_changes.role_grant(otto, str(Role.APPROVER)))
    with pytest.raises(RuleViolation) as refused:
        access_changes.approve_access_change(actor=otto, change=change, reason="I need it")
    assert refused.value.code == "self_privilege_change"
    assert not otto.groups.filter(name=str(Role.APPROVER)).exists()
    assert PrivilegeChange.objects.filter(kind="refused", actor=otto, code="self_privilege_change").exists()
    access_changes.approve_access_change(actor=ada, change=change, reason="on the rota")
    assert otto.groups.filter(name=str(Role.APPROVER)).exists()
    assert PrivilegeChange.objects.get(kind="role_added", subject=otto, group=str(Role.APPROVER)).actor == ada


def test_the_administrators_page_three_people(client, ada, otto, carol):
    """The one who may (a second administrator), a neighbouring role who may not (an auditor), an outsider."""
    auditor = factories.UserFactory(username="frank", roles=[Role.AUDITOR], is_staff=True)
    change = access_changes.request_access_change(actor=ada, grant=access_changes.role_grant(carol, str(Role.APPROVER)))
    page = reverse("compliance:access_changes")
    client.force_login(otto)
    body = client.get(page).content.decode()
    assert "carol" in body and "Deployment Approvers" in body and "Approve" in body
    client.force_login(auditor)
    assert client.get(page).status_code == 200  # auditors read the evidence
    assert _decide(client, change, "approve").status_code == 403
    client.force_login(carol)
    assert client.get(page).status_code == 403
    assert _decide(client, change, "approve").status_code == 403
    change.refresh_from_db()
    assert change.status == AccessChangeStatus.PENDING
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()


def test_a_direct_grant_by_a_signed_in_person_outside_an_access_change_is_refused(client, ada, carol):
    """The backstop: any path that slips past the admin's conversion is refused and recorded."""
    from auditlog.context import set_actor
    from django.db import transaction

    with set_actor(ada), pytest.raises(RuleViolation) as refused, transaction.atomic():
        carol.groups.add(Group.objects.get(name=str(Role.APPROVER)))
    assert refused.value.code == "four_eyes_required"
    with set_actor(ada), pytest.raises(RuleViolation), transaction.atomic():
        carol.is_superuser = True
        carol.save()
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()
    assert not type(carol).objects.filter(pk=carol.pk, is_superuser=True).exists()


def test_duplicate_and_already_held_requests_are_refused(ada, carol):
    grant = access_changes.role_grant(carol, str(Role.APPROVER))
    access_changes.request_access_change(actor=ada, grant=grant)
    with pytest.raises(RuleViolation) as duplicate:
        access_changes.request_access_change(actor=ada, grant=grant)
    assert duplicate.value.code == "already_pending"
    with pytest.raises(RuleViolation) as held:
        access_changes.request_access_change(actor=ada, grant=access_changes.role_grant(carol, str(Role.ENGINEER)))
    assert held.value.code == "already_held"
    with pytest.raises(RuleViolation) as past:
        access_changes.request_access_change(
            actor=ada, grant=access_changes.role_grant(carol, "Auditors"), expires_at=timezone.now() - timedelta(1))
    assert past.value.code == "invalid_expiry"


def test_an_expired_grant_is_revoked_by_the_periodic_job_after_a_reminder(ada, otto, carol, environment,
                                                                          django_capture_on_commit_callbacks):
    factories.UserFactory(username="dave", roles=[Role.APPROVER])
    carol_approver = access_changes.request_access_change(
        actor=ada, grant=access_changes.role_grant(carol, str(Role.APPROVER)))
    access_changes.approve_access_change(actor=otto, change=carol_approver, reason="rota")
    factories.train(carol)
    grant = access_changes.permission_grant(permission=_approve_permission(), target=environment, subject=carol)
    now = timezone.now()
    change = access_changes.request_access_change(actor=ada, grant=grant, expires_at=now + timedelta(days=2),
                                                  reason="cover for a holiday")
    access_changes.approve_access_change(actor=otto, change=change, reason="holiday cover")
    assert can_act(carol, "approve", environment)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert access_changes.expire_access_grants(now=now + timedelta(days=1)) == {"expired": 0, "reminded": 1}
        assert access_changes.expire_access_grants(now=now + timedelta(days=1)) == {"expired": 0, "reminded": 0}
    assert any("carol@example.com" in m.to and "expires soon" in m.subject for m in mail.outbox)
    assert can_act(carol, "approve", environment)
    assert access_changes.expire_access_grants(now=now + timedelta(days=3))["expired"] == 1
    assert access_changes.expire_access_grants(now=now + timedelta(days=3))["expired"] == 0  # safe twice
    assert not can_act(carol, "approve", environment)
    change.refresh_from_db()
    assert change.status == AccessChangeStatus.EXPIRED and change.revoked_at is not None
    assert "Expired" in change.revoke_reason
    assert PrivilegeChange.objects.filter(kind="access_expired", subject=carol).exists()
    assert PrivilegeChange.objects.filter(kind="permission_revoked", subject=carol).exists()
    assert carol.groups.filter(name=str(Role.APPROVER)).exists()  # the permanent role stays


def test_the_expiry_task_runs_as_the_system_and_is_scheduled(ada, otto, carol, settings):
    from portal.schedule import beat_schedule

    assert any(entry["task"] == "compliance.expire_access_grants" for entry in beat_schedule().values())
    change = access_changes.request_access_change(
        actor=ada, grant=access_changes.role_grant(carol, str(Role.APPROVER)),
        expires_at=timezone.now() + timedelta(minutes=5))
    access_changes.approve_access_change(actor=otto, change=change, reason="short task")
    AccessChange.objects.filter(pk=change.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_access_grants.delay().get() == {"expired": 1, "reminded": 0}
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()
    removal = PrivilegeChange.objects.get(kind="role_removed", subject=carol)
    assert removal.actor == system_actor()


def test_createsuperuser_is_the_recorded_bootstrap_path(monkeypatch):
    """The operator installing the portal makes the first superuser with a management command: no
    signed-in actor, allowed, and recorded as a privilege change by the system."""
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "first-superuser-pass-123")
    call_command("createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com")
    recorded = set(PrivilegeChange.objects.filter(subject__username="root").values_list("privilege", "actor"))
    assert recorded == {("staff status granted", None), ("superuser status granted", None)}


def test_a_pending_change_not_decided_before_its_expiry_is_closed_by_the_job(ada, carol):
    now = timezone.now()
    change = access_changes.request_access_change(
        actor=ada, grant=access_changes.role_grant(carol, str(Role.APPROVER)), expires_at=now + timedelta(hours=1))
    access_changes.expire_access_grants(now=now + timedelta(hours=2))
    access_changes.expire_access_grants(now=now + timedelta(hours=2))
    change.refresh_from_db()
    assert change.status == AccessChangeStatus.REJECTED and change.decided_by is None
    assert PrivilegeChange.objects.filter(kind="access_rejected", subject=carol).count() == 1
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()
