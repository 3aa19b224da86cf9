"""Notifications: the right people, once, only after commit; chat webhooks against a real local HTTP
server (pytest-httpserver speaking the generic JSON webhook protocol); retries; reminders; secrets."""

import json
import socket
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from compliance.people.roles import Role
from compliance.people.suspensions import suspend_user
from deployments import tasks
from deployments.choices import EventKind
from deployments.gate import services
from deployments.notifications import dispatch as notifications
from deployments.notifications.admin import ChatChannelForm
from deployments.notifications.models import ChatChannel, ChatKind, NotificationLog, NotificationStatus
from tests import factories

pytestmark = pytest.mark.django_db


def recipients():
    return sorted(address for message in mail.outbox for address in message.to)


def chat_channel(environment, url, name="#deploys"):
    channel = ChatChannel(environment=environment, name=name, kind=ChatKind.JSON)
    channel.set_webhook_url(url)
    channel.save()
    return channel


def test_eligible_approvers_are_emailed_after_commit_with_a_direct_link(submit, approvers, environment, requester,
                                                                        django_capture_on_commit_callbacks, settings):
    factories.UserFactory(username="no-role", roles=[Role.ENGINEER])  # no approver role at all
    unpermitted = factories.approver(username="elsewhere")  # approver role, other environments
    assert unpermitted
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request = submit()
    assert mail.outbox == [] and not NotificationLog.objects.exists()  # nothing before commit
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    assert recipients() == ["approver0@example.com", "approver1@example.com", "approver2@example.com"]
    link = f"{settings.PORTAL_BASE_URL}/requests/{request.pk}/"
    assert all(link in message.body for message in mail.outbox)
    assert "awaits your decision" in mail.outbox[0].subject
    event = request.events.get(kind=EventKind.NOTIFIED)
    assert "approver0, approver1, approver2" in event.message


def test_nothing_is_sent_when_the_transaction_rolls_back(submit, approvers, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        submit()
        raise RuntimeError("the caller's transaction fails")
    assert callbacks == [] and mail.outbox == [] and not NotificationLog.objects.exists()


def test_each_person_is_told_once_even_if_the_task_runs_again(submit, approvers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request = submit()
    assert len(mail.outbox) == 3
    with django_capture_on_commit_callbacks(execute=True):
        tasks.notify_request(request.pk, "awaiting")
        tasks.send_notification_reminders()
    assert len(mail.outbox) == 3
    assert request.events.filter(kind=EventKind.NOTIFIED).count() == 1


def test_ineligible_people_are_not_told(submit, approvers, environment, requester, django_capture_on_commit_callbacks):
    services.update_policy(actor=None, approval_policy=environment.policy, exclude_change_authors=True,
                           required_approvals=2)
    approvers[0].github_login = "author-gh"
    approvers[0].save()
    suspend_user(actor=None, user=approvers[1], reason="Training lapsed")
    requester.groups.add(*approvers[2].groups.all())  # the requester is also an approver here
    factories.grant(requester, "approve", environment)
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(change_authors=["author-gh"])
    assert recipients() == ["approver2@example.com"]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        factories.approve(request, approvers[2])
    # still awaiting one more: nobody new to tell, and no decision yet
    assert mail.outbox == []


def test_the_requester_is_told_the_decision(submit, approvers, requester, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request = submit()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(actor=approvers[0], request=request, comment="Breaks the invoice totals")
    assert recipients() == [requester.email]
    assert "rejected" in mail.outbox[0].subject and "Breaks the invoice totals" in mail.outbox[0].body


def test_a_chat_channel_gets_the_request_and_a_failing_webhook_is_retried(
    submit, approvers, environment, httpserver, django_capture_on_commit_callbacks, celery_retries_eagerly
):
    httpserver.expect_ordered_request("/hooks/deploys", method="POST").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hooks/deploys", method="POST").respond_with_json({"ok": True})
    channel = chat_channel(environment, httpserver.url_for("/hooks/deploys"))
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(title="Rounding fix")
    assert len(httpserver.log) == 2
    body = json.loads(httpserver.log[1][0].get_data())
    assert request.short_sha in body["title"] and f"/requests/{request.pk}/" in body["message"]
    log = NotificationLog.objects.get(chat_channel=channel)
    assert (log.status, log.attempts, log.last_error) == (NotificationStatus.SENT, 2, "")
    assert len(mail.outbox) == 3  # the e-mails went out regardless
    assert "#deploys" in request.events.get(kind=EventKind.NOTIFIED).message


def test_a_webhook_that_keeps_failing_never_blocks_or_loses_the_decision(
    client, submit, approvers, environment, httpserver, celery_retries_eagerly
):
    httpserver.expect_request("/hooks/down", method="POST").respond_with_data("down", status=500)
    request = submit()
    chat_channel(environment, httpserver.url_for("/hooks/down"))
    client.force_login(approvers[0])
    form = {"decision": "approve", "checklist": factories.full_checklist(request).keys(),
            "acknowledge_policy": str(request.policy_snapshot["version"])}
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(reverse("deployments:decide", args=[request.pk]), form)
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == "approved"
    log = NotificationLog.objects.get(channel="chat")
    assert log.status == NotificationStatus.FAILED
    assert log.attempts == tasks.NOTIFICATION_MAX_RETRIES + 1 == len(httpserver.log)
    assert httpserver.url_for("/hooks/down") not in log.last_error  # the URL is a secret


def test_an_unreachable_mail_server_never_blocks_the_decision(
    client, submit, approvers, requester, settings, celery_retries_eagerly
):
    with socket.socket() as probe:  # a port nobody listens on: a real connection failure
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    request = submit()
    client.force_login(approvers[0])
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(reverse("deployments:decide", args=[request.pk]), {
            "decision": "reject", "comment": "Not now", "acknowledge_policy": "1"})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == "rejected"
    log = NotificationLog.objects.get(kind="decision")
    assert log.status == NotificationStatus.FAILED and "ConnectionRefusedError" in log.last_error


def test_reminders_go_out_once_per_period_and_are_safe_to_run_twice(
    submit, approvers, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_REMINDER_AFTER_MINUTES = 60
    with django_capture_on_commit_callbacks(execute=True):
        request = submit()
    mail.outbox.clear()
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.sweep(now=now + timedelta(minutes=30))["reminders"] == 0
        assert notifications.sweep(now=now + timedelta(minutes=61))["reminders"] == 3
        assert notifications.sweep(now=now + timedelta(minutes=75))["reminders"] == 0
    assert len(mail.outbox) == 3 and all("Reminder" in m.subject for m in mail.outbox)
    factories.approve(request, approvers[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.sweep(now=now + timedelta(minutes=200))["reminders"] == 0  # decided: no reminder


def test_the_sweep_catches_up_on_a_request_nobody_was_told_about(submit, approvers):
    request = submit()  # inside the test transaction: the on_commit hook never ran
    assert not NotificationLog.objects.exists()
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        result = notifications.sweep(now=timezone.now() + timedelta(minutes=5))
    assert result["missed"] == 3 and len(mail.outbox) == 3
    assert request.events.filter(kind=EventKind.NOTIFIED).exists()


def test_webhook_urls_are_encrypted_and_kept_out_of_audit_diffs(environment):
    secret_url = "https://hooks.slack.com/services/T000/B000/SuperSecretToken1234"
    form = ChatChannelForm(data={"environment": environment.pk, "name": "#prod", "kind": ChatKind.SLACK,
                                 "is_active": True, "webhook_url": secret_url})
    assert form.is_valid(), form.errors
    channel = form.save()
    channel.refresh_from_db()
    assert channel.webhook_url == secret_url
    assert "SuperSecret" not in channel.webhook_url_encrypted and channel.webhook_hint.endswith("1234")
    entries = LogEntry.objects.get_for_object(channel)
    assert entries.exists()
    assert all("SuperSecret" not in json.dumps(entry.changes) for entry in entries)
    assert all("webhook_url_encrypted" not in (entry.changes or {}) for entry in entries)
    # editing without a new URL keeps the stored one
    form = ChatChannelForm(instance=channel, data={"environment": environment.pk, "name": "#prod-deploys",
                                                   "kind": ChatKind.SLACK, "is_active": True, "webhook_url": ""})
    assert form.is_valid(), form.errors
    assert form.save().webhook_url == secret_url


def test_a_bad_webhook_url_is_refused(environment):
    form = ChatChannelForm(data={"environment": environment.pk, "name": "#x", "kind": ChatKind.SLACK,
                                 "is_active": True, "webhook_url": "https://example.com/not-slack"})
    assert not form.is_valid() and "hooks.slack.com" in str(form.errors)
    form = ChatChannelForm(data={"environment": environment.pk, "name": "#y", "kind": ChatKind.JSON,
                                 "is_active": True, "webhook_url": "ftp://example.com/x"})
    assert not form.is_valid()


def test_the_chat_channel_admin_never_shows_the_url(client, environment):
    channel = chat_channel(environment, "https://hooks.slack.com/services/T1/B1/HiddenValue9876")
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    for url in (reverse("admin:deployments_chatchannel_changelist"),
                reverse("admin:deployments_chatchannel_change", args=[channel.pk])):
        response = client.get(url)
        assert response.status_code == 200 and "HiddenValue" not in response.content.decode()


def test_approvers_granted_through_a_group_are_told(environment, requester, django_capture_on_commit_callbacks):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="payments approvers")
    factories.grant(team, "approve", environment)
    member = factories.approver(username="grace")
    member.groups.add(team)
    factories.approver(username="henry")  # the role, but not in the team: not eligible here
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    assert recipients() == ["grace@example.com"]


def test_a_notification_is_sent_once_even_when_two_workers_hold_it(submit, approvers):
    request = submit()  # inside the test transaction: nothing planned yet
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=False):  # plan, but do not enqueue the deliveries
        log_id = notifications.plan_notifications(request_id=request.pk, kind="awaiting")[0]
    NotificationLog.objects.filter(pk=log_id).update(status="sending", last_attempt_at=timezone.now())
    assert notifications.deliver(log_id=log_id) == "sending"  # another worker is sending it
    assert mail.outbox == []
    # that worker died: after the claim times out, the notification is taken over and sent once
    NotificationLog.objects.filter(pk=log_id).update(last_attempt_at=timezone.now() - timedelta(minutes=16))
    assert notifications.deliver(log_id=log_id) == "sent"
    assert notifications.deliver(log_id=log_id) == "sent"
    assert len(mail.outbox) == 1
