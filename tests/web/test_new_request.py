"""Requesting from the web: the New request page goes through the same service and refusals as the API,
and the request page tells the requester what happens next and lets them cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.choices import RequestSource, RequestStatus
from deployments.gate import services
from deployments.models import DeploymentRequest, FreezeWindow, Refusal
from deployments.notifications.dispatch import plan_notifications
from deployments.notifications.models import NotificationKind
from tests import factories

pytestmark = pytest.mark.django_db

NEW = reverse("deployments:new_request")


def form(environment, **overrides):
    data = {"environment": environment.pk, "sha": factories.sha(), "ref": "main", "title": "Refund rounding"}
    data.update(overrides)
    return data


def test_the_page_offers_only_environments_the_engineer_may_request(client, requester, environment):
    other = factories.make_environment(name="secret")
    client.force_login(requester)
    choices = [env.pk for env in client.get(NEW).context["form"].fields["environment"].queryset]
    assert choices == [environment.pk] and other.pk not in choices


def test_a_request_from_the_web_is_submitted_through_the_service(client, requester, environment):
    client.force_login(requester)
    response = client.post(
        NEW,
        form(
            environment,
            change_authors="rita, Bob ",
            files_changed="3",
            additions="10",
            compare_url="https://git.example/compare/a...b",
        ),
    )
    created = DeploymentRequest.objects.get()
    assert response.status_code == 302 and response.url == reverse("deployments:request_detail", args=[created.pk])
    assert created.source == RequestSource.WEB and created.requester == requester
    assert created.status == RequestStatus.AWAITING_APPROVAL
    assert created.change_authors == ["Bob", "rita"]
    assert created.change_set == {
        "files_changed": 3,
        "additions": 10,
        "compare_url": "https://git.example/compare/a...b",
    }


def test_typos_show_every_field_error_at_once_and_are_not_kept_as_refusals(client, requester, environment):
    client.force_login(requester)
    response = client.post(NEW, {"environment": environment.pk, "sha": "", "ref": "", "files_changed": "-1"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert {"sha", "ref", "files_changed"} <= set(errors)
    assert not DeploymentRequest.objects.exists() and not Refusal.objects.exists()


def test_a_rule_refusal_is_the_services_and_is_recorded(client, requester, environment):
    client.force_login(requester)
    response = client.post(NEW, form(environment, sha="z" * 40))
    assert response.status_code == 400
    assert "40 lowercase hexadecimal" in response.context["error"]
    assert Refusal.objects.get().code == "invalid_sha"
    assert not DeploymentRequest.objects.exists()


def test_an_environment_outside_the_engineers_grants_cannot_be_forged(client, requester):
    other = factories.make_environment(name="secret")
    client.force_login(requester)
    response = client.post(NEW, form(other))
    assert response.status_code == 400 and "environment" in response.context["form"].errors
    assert not DeploymentRequest.objects.exists()


def test_only_engineers_may_request(client, environment):
    approver = factories.approver(environment)
    client.force_login(approver)
    assert client.get(NEW).status_code == 403


def test_during_a_freeze_an_emergency_needs_a_justification(client, requester, environment):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=environment,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="Black Friday",
    )
    client.force_login(requester)
    refused = client.post(NEW, form(environment))
    assert refused.status_code != 302 and Refusal.objects.filter(code="freeze_in_effect").exists()
    no_reason = client.post(NEW, form(environment, is_emergency="on"))
    assert "justification" in no_reason.context["form"].errors
    ok = client.post(
        NEW, form(environment, is_emergency="on", justification="Payments fail for every customer since 09:12.")
    )
    assert ok.status_code == 302
    created = DeploymentRequest.objects.get()
    assert created.is_emergency and created.during_freeze


def test_the_request_page_tells_the_requester_what_happens_next(client, requester, approvers, environment):
    approvers[2].email = ""  # no address: not notified
    approvers[2].save()
    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    plan_notifications(request_id=request.pk, kind=NotificationKind.AWAITING)
    client.force_login(requester)
    page = client.get(reverse("deployments:request_detail", args=[request.pk]))
    steps = page.context["next"]
    assert steps["notified"] == ["approver0", "approver1"] and steps["approvals_needed"] == 1
    assert steps["decide_before"] == request.expires_at and steps["can_cancel"]
    text = page.content.decode()
    assert "Notified: approver0, approver1." in text and "1 more approval needed." in text
    assert "must start within 2 hours" in text
    factories.approve(request, approvers[0])
    request.refresh_from_db()
    page = client.get(reverse("deployments:request_detail", args=[request.pk]))
    assert page.context["next"]["deploy_before"] == request.approval_expires_at
    assert "deploy before" in page.content.decode()


def test_the_requester_cancels_from_the_page_and_an_approver_may_not(client, requester, approvers, submit):
    request = submit()
    url = reverse("deployments:cancel_request", args=[request.pk])
    client.force_login(approvers[0])
    assert not client.get(reverse("deployments:request_detail", args=[request.pk])).context["next"]["can_cancel"]
    client.post(url, {"reason": "no"})
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert Refusal.objects.filter(code="not_permitted", request=request).exists()
    client.force_login(requester)
    response = client.post(url, {"reason": "Wrong commit."})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED and request.status_reason == "Wrong commit."
