"""The smaller web holes: Content-Security-Policy and no inline script, CI links only through the
https filter, control characters in filters answer 400, refused webhooks in a bounded log (not the
audit trail), and only same-origin images in policy Markdown."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from compliance.models import Violation
from compliance.people.roles import Role
from compliance.training import services as compliance_services
from deployments.github import webhooks
from deployments.github.models import BranchProtectionRule, GitHubWebhookRejection
from tests import factories
from tests.github.conftest import REPOSITORY, github, github_key, production, send  # noqa: F401  (fixtures)
from tests.github_fake import fixture

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


# --- Content-Security-Policy ----------------------------------------------------------------------


def _csp(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split(" ", 1)[0]: part.strip() for part in (p.strip() for p in header.split(";")) if part}


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/queue/", "/admin/", "/api/docs/", "/policy/"])
def test_every_page_carries_a_strict_content_security_policy(client, path):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True, roles=[Role.APPROVER]))
    response = client.get(path)
    assert response.status_code in (200, 302, 404)
    csp = _csp(response)
    assert csp["default-src"] == "default-src 'self'"
    assert "unsafe-inline" not in csp.get("script-src", csp["default-src"])
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["object-src"] == "object-src 'none'"
    assert csp["base-uri"] == "base-uri 'self'"
    assert csp["form-action"] == "form-action 'self'"
    assert csp["img-src"] == "img-src 'self' data:"


def test_no_template_has_an_inline_script_style_or_event_handler():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        if path.name == "report_pdf.html":  # rendered to PDF by WeasyPrint, never served as a page
            continue
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text, flags=re.IGNORECASE):
            if "src=" not in tag:
                offenders.append(f"{path.relative_to(TEMPLATES)}: inline {tag}")
        if re.search(r"<style\b", text, flags=re.IGNORECASE) or re.search(r"\sstyle=", text):
            offenders.append(f"{path.relative_to(TEMPLATES)}: inline style")
        if re.search(r"\son[a-z]+\s*=", text, flags=re.IGNORECASE) or "hx-on" in text:
            offenders.append(f"{path.relative_to(TEMPLATES)}: inline event handler")
    assert offenders == []


def test_the_api_docs_page_loads_its_script_from_a_url_and_it_answers(client):
    page = client.get("/api/docs/")
    html = page.content.decode()
    assert page.status_code == 200
    assert not re.search(r"<script>(?!</script>)", html)  # no inline script body
    assert "<style>" not in html
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', html).group(1).replace("&amp;", "&")
    script = client.get(script_url)
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    assert re.search(r'href="[^"]*css/swagger\.css"', html) and finders.find("css/swagger.css")


# --- control characters in filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/queue/?q=%00",
        "/queue/?q=main%00x",
        "/queue/?service=%01",
        "/my-requests/?q=%1b[31m",
        "/decisions/?ref=%7f",
        "/training/matrix/?status=%00",
        "/reports/?from=%00",
        "/monitoring/violations/?status=%00",
        "/admin/deployments/deploymentrequest/?q=%00",
    ],
)
def test_a_control_character_in_a_filter_is_a_400_naming_the_problem(client, url):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True,
                                             roles=[Role.APPROVER, Role.ENGINEER, Role.AUDITOR]))
    response = client.get(url)
    assert response.status_code == 400
    body = response.content.decode()
    assert "control character" in body and "Bad request" in body
    assert "Content-Security-Policy" in response.headers


def test_the_api_answers_a_control_character_in_its_own_error_format(client):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    response = client.get("/api/v1/requests/?ref=%00")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and "control character" in response.json()["error"]["message"]


def test_a_control_character_is_refused_before_sign_in_too(client):
    response = client.get("/accounts/login/?next=/queue/%00")
    assert response.status_code == 400 and "control character" in response.content.decode()


def test_ordinary_searches_still_work(client):
    client.force_login(factories.UserFactory(roles=[Role.APPROVER]))
    assert client.get("/queue/?q=release%2F1.2+fix%C3%A9").status_code == 200


# --- CI links ---------------------------------------------------------------------------------------


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


def test_a_stored_javascript_evidence_link_is_rendered_as_text(client, db):
    from compliance.violations import services as violations

    violation = violations.open_violation(
        kind="unauthorized_push", severity="high", title="t", evidence={}, dedup_key="x-1",
        evidence_links=[{"label": "Commit", "url": "javascript:alert(1)"},
                        {"label": "Request", "url": "https://portal.example.com/requests/1/"}],
    )
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    page = client.get(reverse("monitoring:violation_detail", args=[violation.pk])).content.decode()
    assert 'href="javascript:' not in page and "Commit" in page
    assert 'href="https://portal.example.com/requests/1/"' in page


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
    assert client.get(reverse("admin:deployments_githubwebhookrejection_change", args=[row.pk])).status_code == 200
    assert client.get(reverse("admin:deployments_githubwebhookrejection_delete", args=[row.pk])).status_code == 403
    assert client.post(reverse("admin:deployments_githubwebhookrejection_changelist"),
                       {"action": "delete_selected", "_selected_action": [row.pk]}).status_code in (200, 302)
    assert GitHubWebhookRejection.objects.filter(pk=row.pk).exists()


def test_prune_keeps_everything_under_the_cap(db):
    for i in range(3):
        webhooks.record_rejection(reason="signature_missing", status=401, remote_addr=f"192.0.2.{i + 1}")
    assert webhooks.prune_rejections(keep=5) == 0 and GitHubWebhookRejection.objects.count() == 3
    assert webhooks.prune_rejections(keep=1) == 2 and GitHubWebhookRejection.objects.count() == 1


# --- images in policy Markdown ------------------------------------------------------------------------


def test_a_policy_document_keeps_only_same_origin_images(client, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    compliance_services.publish_policy(
        actor=None, title="Deployment Authorization Policy", version="99.0",
        body="# Rules\n![tracker](https://tracker.example.net/pixel.gif?reader=1)\n"
             "![diagram](/static/css/diagram.png)\n![same](https://portal.example.com/static/flow.png)\n"
             "<img src=\"//cdn.example.net/x.png\"> <img src=\"/\\evil.example/x.png\">",
    )
    client.force_login(factories.UserFactory())
    body = client.get("/policy/").content.decode()
    assert "tracker.example.net" not in body and "cdn.example.net" not in body and "evil.example" not in body
    assert 'src="/static/css/diagram.png"' in body
    assert 'src="https://portal.example.com/static/flow.png"' in body


# --- in a real browser: the policy breaks nothing ------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_work_in_chromium_under_the_policy_without_violations(monkeypatch, live_server):
    from tests.services_required import require_chromium
    from tests.test_browser import CHROMIUM_ARGS, PASSWORD

    path = require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    factories.UserFactory(username="root", password=PASSWORD, is_superuser=True, is_staff=True,
                          roles=[Role.APPROVER])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        violations = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(f"{live_server.url}/api/docs/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=15000)  # the UI initialised
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        for url in ("/queue/", "/admin/", "/admin/deployments/chatchannel/add/"):
            page.goto(f"{live_server.url}{url}")
            page.wait_for_load_state("load")
        browser.close()
    assert violations == []
