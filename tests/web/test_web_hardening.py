"""The smaller web holes: Content-Security-Policy and no inline script, CI links only through the
https filter, control characters in filters answer 400, and only same-origin images in policy
Markdown. (GitHub's refused-webhook log and push links: tests/integrations/github/test_web_hardening.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from compliance.people.roles import Role
from compliance.training import services as compliance_services
from compliance.violations import services as violations
from tests import factories

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


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
        if path.name.endswith("_pdf.html"):  # rendered to PDF by WeasyPrint, never served as a page
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


def test_a_stored_javascript_evidence_link_is_rendered_as_text(client, db):

    violation = violations.open_violation(
        kind="unauthorized_push", severity="high", title="t", evidence={}, dedup_key="x-1",
        evidence_links=[{"label": "Commit", "url": "javascript:alert(1)"},
                        {"label": "Request", "url": "https://portal.example.com/requests/1/"}],
    )
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    page = client.get(reverse("monitoring:violation_detail", args=[violation.pk])).content.decode()
    assert 'href="javascript:' not in page and "Commit" in page
    assert 'href="https://portal.example.com/requests/1/"' in page


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
    from tests.web.test_browser import CHROMIUM_ARGS, PASSWORD

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
