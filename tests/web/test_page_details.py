"""Page details: violation evidence readable as a definition list, a neutral reconciliation panel when
no CI system is configured, the policy-document admin message, XLSX exports and the 404 page."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl.utils import get_column_letter

from compliance.monitoring.jobs import expect_scheduled_jobs
from compliance.people.roles import Role
from compliance.violations import services as violations
from deployments.gate import services
from deployments.models import ReconciliationRun
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True, email="ada@example.com")


def test_violation_evidence_is_a_definition_list_not_a_python_dict(client, admin_user, environment):
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    services.report_execution(actor=bot, environment=environment, sha=factories.sha(), status="success")
    violation = violations.Violation.objects.get()
    violations.Violation.objects.filter(pk=violation.pk).update(
        evidence={
            "external_id": "run-42",
            "approvals": [{"approver": "bob", "decision": "approve"}],
            "emergency": False,
        }
    )
    client.force_login(admin_user)
    html = client.get(reverse("monitoring:violation_detail", args=[violation.pk])).content.decode()
    evidence = html.split("<h2>Evidence</h2>", 1)[1].split("</section>", 1)[0]
    assert "{&#x27;" not in evidence and "&#x27;external_id&#x27;" not in evidence
    assert "<dt>External id</dt><dd>run-42</dd>" in evidence
    assert "<dt>Emergency</dt><dd>no</dd>" in evidence
    assert "&quot;approver&quot;: &quot;bob&quot;" in evidence  # nested values as indented JSON in a <pre>


def test_publishing_a_policy_version_in_the_admin_names_it_in_the_message(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:compliance_policydocument_add"),
        {
            "title": "Deployment Authorization Policy",
            "version": "7.0",
            "body": "# New\nText",
            "effective_at_0": "2026-01-01",
            "effective_at_1": "00:00:00",
        },
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any("Deployment Authorization Policy v7.0" in m for m in messages), messages
    assert not any('" v"' in m or "“ v”" in m for m in messages)


def _reconciliation_panel(client) -> str:
    html = client.get(reverse("monitoring:index")).content.decode()
    return html.split("Reconciliation (lost events caught)", 1)[1].split("</section>", 1)[0]


def test_the_reconciliation_panel_is_neutral_without_a_configured_ci_system(client, admin_user):
    client.force_login(admin_user)
    assert "No successful reconciliation" in _reconciliation_panel(client)  # no scheduler, never ran: an alarm
    expect_scheduled_jobs()  # `make run` / the demo: beat just started, the first run is not due yet
    panel = _reconciliation_panel(client)
    assert "Reconciliation has not run yet" in panel
    assert "No successful reconciliation" not in panel and 'class="flag"' not in panel
    now = timezone.now()
    ReconciliationRun.objects.create(
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3),
        sources={"github": {"label": "GitHub", "configured": False, "recorded": 0}},
    )
    panel = _reconciliation_panel(client)
    assert "No CI integration configured to reconcile" in panel and 'class="flag"' not in panel


def test_the_reconciliation_panel_flags_a_configured_ci_system_that_was_not_reconciled(client, admin_user):
    now = timezone.now()
    ReconciliationRun.objects.create(
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3),
        sources={"github": {"label": "GitHub", "configured": True, "recorded": 2}},
    )
    client.force_login(admin_user)
    panel = _reconciliation_panel(client)
    assert "No successful reconciliation in the last 60 minutes" in panel
    assert "No CI integration configured" not in panel


def test_the_xlsx_export_has_real_times_widths_an_autofilter_who_and_when_and_the_period(
    client, requester, environment
):
    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    client.force_login(factories.UserFactory(username="frank", roles=[Role.AUDITOR]))
    response = client.get(reverse("reports:export", args=["deployment-authorization-log", "xlsx"]))
    assert response.status_code == 200
    assert f"_{timezone.localdate()}.xlsx" in response["Content-Disposition"]
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    requested = sheet.cell(row=2, column=header.index("Requested at (UTC)") + 1)
    assert sheet.cell(row=2, column=1).value == request.pk
    assert isinstance(requested.value, datetime) and requested.is_date
    assert abs(requested.value - request.created_at.astimezone(UTC).replace(tzinfo=None)) < timedelta(seconds=1)
    assert sheet.auto_filter.ref == f"A1:{get_column_letter(len(header))}2"
    widths = [sheet.column_dimensions[get_column_letter(i + 1)].width for i in range(len(header))]
    assert all(width and width >= len(label) for width, label in zip(widths, header, strict=True))
    about = " ".join(str(cell.value) for row in workbook["About"].iter_rows() for cell in row if cell.value)
    assert "Generated by frank at " in about and str(timezone.localdate()) in about


def test_export_file_names_name_the_period_even_without_dates(client, environment):
    client.force_login(factories.UserFactory(username="frank", roles=[Role.AUDITOR]))
    url = reverse("reports:export", args=["deployment-authorization-log", "csv"])
    today = timezone.localdate()
    assert f'filename="deployment-authorization-log-start_{today}.csv"' in client.get(url)["Content-Disposition"]
    response = client.get(url, {"from": "2026-01-01", "to": "2026-03-31"})
    assert 'filename="deployment-authorization-log-2026-01-01_2026-03-31.csv"' in response["Content-Disposition"]


def test_people_see_the_portals_404_page_in_debug_mode_and_staff_see_djangos(client, settings, requester, admin_user):
    settings.DEBUG = True  # as in `make run`
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing here, or nothing you may see." in page and "URLconf" not in page
    client.force_login(requester)
    response = client.get(reverse("deployments:request_detail", args=[999999]))
    assert response.status_code == 404 and "There is nothing here" in response.content.decode()
    assert "There is nothing here" in client.get("/no-such-page/").content.decode()
    client.force_login(admin_user)  # staff: the developers keep Django's debug page
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and "URLconf" in response.content.decode()
