"""Notifications through a real Celery worker on Redis (not eager): after the decision commits, the
worker plans and delivers them — e-mail and a chat webhook on a real local HTTP server."""

import pytest
from django.core import mail

from deployments.notifications.models import ChatChannel, ChatKind, NotificationLog, NotificationStatus
from tests import factories
from tests.services_required import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_the_worker_notifies_approvers_and_the_chat_after_commit(celery_worker, submit, approvers,
                                                                 environment, httpserver):
    httpserver.expect_request("/hooks/deploys", method="POST").respond_with_json({"ok": True})
    channel = ChatChannel(environment=environment, name="#deploys", kind=ChatKind.JSON)
    channel.set_webhook_url(httpserver.url_for("/hooks/deploys"))
    channel.save()
    request = submit()
    assert wait_for(lambda: NotificationLog.objects.filter(request=request, status=NotificationStatus.SENT).count()
                    == 4)
    assert sorted(m.to[0] for m in mail.outbox) == [f"approver{i}@example.com" for i in range(3)]
    assert len(httpserver.log) == 1
    factories.approve(request, approvers[0])
    assert wait_for(lambda: any("approved" in m.subject for m in mail.outbox))
    assert wait_for(lambda: len(httpserver.log) == 2)
