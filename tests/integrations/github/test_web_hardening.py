"""The GitHub webhook's part of web hardening: refused calls go to a bounded, rate-limited log (not the
audit trail) without their body being read, and a push's compare URL never becomes a javascript: link."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from compliance.models import Violation
from compliance.people.roles import Role
from deployments.integrations.github import webhooks
from deployments.integrations.github.models import BranchProtectionRule, GitHubWebhookRejection
from tests import factories
from tests.integrations.github.conftest import send
from tests.integrations.github.fake import fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def protected_main(production):  # noqa: F811
    rule = BranchProtectionRule.objects.create(service=production.service, pattern="main", restrict_pushers=True)
    return rule


def test_a_javascript_compare_url_in_a_push_never_becomes_a_link(
    client, github, protected_main, django_capture_on_commit_callbacks  # noqa: F811
):
    payload = fixture("push")
    payload["compare"] = "javascript:alert(document.cookie)//"
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "push", payload).status_code == 202
    violation = Violation.objects.get()
    assert all(not str(link.get("url", "")).startswith("javascript:") for link in violation.evidence_links)
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    page = client.get(reverse("monitoring:violation_detail", args=[violation.pk])).content.decode()
    assert "javascript:alert" not in page.split("<pre", 1)[0]  # not as a link (the JSON evidence may quote it)
    assert 'href="javascript:' not in page


# --- refused webhooks: a bounded log, not evidence ----------------------------------------------------


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def _post_unsigned(client, body: bytes, *, addr="203.0.113.7", stream=None):
    stream = stream or CountingStream(body)
    response = client.generic(
        "POST", "/webhooks/github/", b"", content_type="application/json",
        **{"wsgi.input": stream, "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": addr,
           "HTTP_X_GITHUB_EVENT": "push", "HTTP_X_GITHUB_DELIVERY": "d-1", "HTTP_USER_AGENT": "x" * 500},
    )
    return response, stream


def test_an_unsigned_call_is_refused_without_reading_its_body(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = "configured-secret"
    response, stream = _post_unsigned(client, b"{" + b"x" * 500_000 + b"}")
    assert response.status_code == 401
    assert stream.bytes_read == 0
    row = GitHubWebhookRejection.objects.get()
    assert row.reason == "signature_missing" and row.content_length == 500_002 and len(row.user_agent) == 200


def test_a_signed_call_over_the_limit_stops_reading_at_the_limit(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = "configured-secret"
    settings.GITHUB_WEBHOOK_MAX_BYTES = 1000
    body = b"x" * 50_000
    stream = CountingStream(body)
    # A lying Content-Length (smaller than the body) passes the header check; the read is still capped.
    response = client.generic("POST", "/webhooks/github/", b"", content_type="application/json",
                              **{"wsgi.input": stream, "CONTENT_LENGTH": "999", "REMOTE_ADDR": "203.0.113.8",
                                 "HTTP_X_HUB_SIGNATURE_256": "sha256=" + "0" * 64})
    assert response.status_code == 401 and stream.bytes_read <= 1001


def test_rejections_are_not_in_the_audit_trail(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = "configured-secret"
    _post_unsigned(client, b"{}")
    assert GitHubWebhookRejection.objects.count() == 1
    content_type = ContentType.objects.get_for_model(GitHubWebhookRejection)
    assert not LogEntry.objects.filter(content_type=content_type).exists()
    from compliance.audit.chain import chained_models

    assert GitHubWebhookRejection not in [c.model for c in chained_models()]


def test_one_address_writes_one_row_per_interval_and_the_rest_are_counted(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = "configured-secret"
    for _ in range(5):
        assert _post_unsigned(client, b"{}")[0].status_code == 401
    _post_unsigned(client, b"{}", addr="198.51.100.4")
    rows = {r.remote_addr: r for r in GitHubWebhookRejection.objects.all()}
    assert set(rows) == {"203.0.113.7", "198.51.100.4"}
    assert rows["203.0.113.7"].count == 5 and rows["198.51.100.4"].count == 1
    # After the interval the same address writes a new row.
    GitHubWebhookRejection.objects.filter(remote_addr="203.0.113.7").update(
        received_at=timezone.now() - timedelta(seconds=settings.GITHUB_WEBHOOK_REJECTION_INTERVAL_SECONDS + 1))
    _post_unsigned(client, b"{}")
    assert GitHubWebhookRejection.objects.filter(remote_addr="203.0.113.7").count() == 2


def test_the_log_keeps_only_the_newest_rows(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = "configured-secret"
    settings.GITHUB_WEBHOOK_REJECTIONS_KEEP = 3
    for i in range(7):
        _post_unsigned(client, b"{}", addr=f"203.0.113.{10 + i}")
    assert sorted(GitHubWebhookRejection.objects.values_list("remote_addr", flat=True)) == [
        "203.0.113.14", "203.0.113.15", "203.0.113.16"]


def test_nobody_deletes_a_rejection_in_the_admin(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = "configured-secret"
    _post_unsigned(client, b"{}")
    row = GitHubWebhookRejection.objects.get()
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    assert client.get(reverse("admin:github_githubwebhookrejection_change", args=[row.pk])).status_code == 200
    assert client.get(reverse("admin:github_githubwebhookrejection_delete", args=[row.pk])).status_code == 403
    assert client.post(reverse("admin:github_githubwebhookrejection_changelist"),
                       {"action": "delete_selected", "_selected_action": [row.pk]}).status_code in (200, 302)
    assert GitHubWebhookRejection.objects.filter(pk=row.pk).exists()


def test_prune_keeps_everything_under_the_cap(db):
    for i in range(3):
        webhooks.record_rejection(reason="signature_missing", status=401, remote_addr=f"192.0.2.{i + 1}")
    assert webhooks.prune_rejections(keep=5) == 0 and GitHubWebhookRejection.objects.count() == 3
    assert webhooks.prune_rejections(keep=1) == 2 and GitHubWebhookRejection.objects.count() == 1


