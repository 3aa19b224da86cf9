"""Auditor reports: contents against known answers, every export read back by its own reader, the
evidence bundle's hashes, formula neutralisation, who may read them, and streaming query counts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, timedelta

import openpyxl
import pypdf
import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance.people import suspensions as compliance_services
from compliance.people.roles import Role
from compliance.reports import exporters, registry
from compliance.reports.models import ReportExport
from compliance.reports.registry import Column, Filters, Report
from deployments.choices import ExecutionStatus, RequestStatus
from deployments.gate import services
from deployments.models import Approval, DecisionDelivery, DeploymentRequest, FreezeWindow
from deployments.reports import definitions as deployment_reports
from tests import factories

pytestmark = pytest.mark.django_db

AUTH_LOG = "deployment-authorization-log"
EVIL_LOGIN = '=HYPERLINK("http://evil.example/steal","click")'


def iso(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(slug: str, filters: Filters | None = None) -> list[dict]:
    return list(registry.get(slug).iter_rows(filters or Filters()))


def refused(code, func, **kwargs):
    with pytest.raises(Exception) as caught:
        func(**kwargs)
    assert getattr(caught.value, "code", None) == code, caught.value


@pytest.fixture
def world(db):
    """Two services, three requests with known outcomes, two refusals, two flagged executions.

    - r1 payments/production (2 approvals, change authors excluded): carl (a change author) is
      refused, anna and ben approve, CI deploys it, then CI deploys a different sha under it.
    - r2 web/staging: dual requests it and tries to approve it himself (refused), erin rejects.
    - an execution of an unknown sha in payments/production.
    - r3 web/staging during a freeze: an emergency request, awaiting approval.
    """
    payments = factories.ServiceFactory(name="payments")
    web = factories.ServiceFactory(name="web")
    prod = factories.make_environment(service=payments, name="production", required_approvals=2,
                                      exclude_change_authors=True)
    stage = factories.make_environment(service=web, name="staging")
    rita = factories.engineer(prod, username="rita")
    factories.grant(rita, "request", stage)
    anna = factories.approver(prod, username="anna")
    ben = factories.approver(prod, username="ben")
    carl = factories.approver(prod, username="carl")
    erin = factories.approver(stage, username="erin")
    dual = factories.UserFactory(username="dual", roles=[Role.ENGINEER, Role.APPROVER])
    factories.grant(dual, "request", stage)
    factories.grant(dual, "approve", stage)
    ci = factories.UserFactory(username="ci-bot", is_service_account=True)

    r1 = services.submit_request(
        actor=rita, environment=prod, sha=factories.sha("r1"), ref="refs/heads/main",
        change_authors=["carl"], change_set={"commits": [{"sha": "a"}, {"sha": "b"}, {"sha": "c"}]},
        checks={"unit": "success", "lint": "success"}, requester_login=EVIL_LOGIN,
    )
    refused("change_author", factories.approve, request=r1, user=carl)
    factories.approve(r1, anna, comment="Looks safe.")
    factories.approve(r1, ben)
    services.report_execution(actor=ci, environment=prod, sha=r1.sha, status=ExecutionStatus.SUCCESS)
    services.report_execution(actor=ci, environment=prod, sha=factories.sha("rogue"), status=ExecutionStatus.SUCCESS)
    services.report_execution(
        actor=ci, environment=prod, sha=factories.sha("other"), status=ExecutionStatus.SUCCESS, request=r1
    )

    r2 = services.submit_request(actor=dual, environment=stage, sha=factories.sha("r2"), ref="main")
    refused("self_approval", factories.approve, request=r2, user=dual)
    services.reject_request(actor=erin, request=r2, comment="Breaks the API.")

    now = timezone.now()
    FreezeWindow.objects.create(environment=stage, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="Black Friday")
    r3 = services.submit_request(actor=dual, environment=stage, sha=factories.sha("r3"), ref="main",
                                 is_emergency=True, justification="Checkout is down for everyone; hotfix.")
    for request in (r1, r2, r3):
        request.refresh_from_db()
    return {"r1": r1, "r2": r2, "r3": r3, "prod": prod, "stage": stage, "people": {
        "rita": rita, "anna": anna, "ben": ben, "carl": carl, "erin": erin, "dual": dual, "ci": ci}}


def auditor(**kwargs):
    return factories.UserFactory(roles=[Role.AUDITOR], **kwargs)


# --- contents -----------------------------------------------------------------------------------


def test_the_authorization_log_holds_every_request_with_its_decisions_and_execution(world):
    r1, r2, r3 = world["r1"], world["r2"], world["r3"]
    log = rows(AUTH_LOG)
    assert [row["request_id"] for row in log] == [r1.pk, r2.pk, r3.pk]
    first = log[0]
    anna_at, ben_at = (iso(a.created_at) for a in Approval.objects.filter(request=r1).order_by("id"))
    # Each decision's evidence: its checklist answers, policy version, acknowledgement and hash (the
    # JSON's spacing and key order are the database's own).
    anna_evidence, ben_evidence = first.pop("decision_evidence").split(" | ")
    digest = Approval.objects.filter(request=r1).first().policy_sha256
    assert len(digest) == 64
    for name, evidence in (("anna", anna_evidence), ("ben", ben_evidence)):
        assert evidence.startswith(f"{name}: checklist {{") and '"Meets security requirements": true' in evidence
        assert evidence.endswith(f"; policy v1 not acknowledged, sha256 {digest}")
    # decided through the service without a browser session: how they authenticated is unknown, and says so
    assert first.pop("approver_authentication") == "anna: unknown, no MFA | ben: unknown, no MFA"
    assert first == {
        "request_id": r1.pk,
        "requested_at": iso(r1.created_at),
        "service": "payments",
        "environment": "production",
        "tier": "staging",
        "requester": "rita",
        "requester_login": EVIL_LOGIN,
        "source": "web",
        "sha": factories.sha("r1"),
        "ref": "refs/heads/main",
        "checks": "lint=success, unit=success",
        "commit_count": 3,
        "change_authors": "carl",
        "approvals": f"anna approve at {anna_at}: Looks safe. | ben approve at {ben_at}",
        "policy_version": 1,
        "required_approvals": 2,
        "status": RequestStatus.DEPLOYED,
        "decided_at": iso(r1.decided_at),
        "delivery": None,  # no CI provider targets this request
        "execution_status": "success",
        "deployed_sha": factories.sha("other"),
        "emergency": False,
        "during_freeze": False,
        "flagged": False,
        "unauthorized": True,
    }
    second = log[1]
    assert second["requester"] == "dual" and second["status"] == RequestStatus.REJECTED
    assert second["approvals"].startswith("erin reject at ") and second["approvals"].endswith(": Breaks the API.")
    assert second["execution_status"] is None and second["unauthorized"] is False
    assert second["commit_count"] is None and not second["checks"] and not second["change_authors"]
    third = log[2]
    assert (third["emergency"], third["during_freeze"], third["flagged"]) == (True, True, True)
    assert third["status"] == RequestStatus.AWAITING_APPROVAL and third["approvals"] is None


def test_the_authorization_log_shows_the_latest_decision_delivery_to_ci(world):
    r1, r2 = world["r1"], world["r2"]
    now = timezone.now()
    DecisionDelivery.objects.create(request=r1, provider="webhook", decision="approved", status="failed",
                                    attempts=8, failed_at=now - timedelta(minutes=5), next_attempt_at=now)
    delivered = DecisionDelivery.objects.create(request=r1, provider="github", decision="approved",
                                                status="delivered", attempts=2, delivered_at=now,
                                                next_attempt_at=now)
    DecisionDelivery.objects.create(request=r2, provider="github", decision="rejected", status="pending",
                                    next_attempt_at=now)
    by_id = {row["request_id"]: row["delivery"] for row in rows(AUTH_LOG)}
    assert by_id[r1.pk] == f"github approved delivered at {iso(delivered.delivered_at)} (2 attempt(s))"
    assert by_id[r2.pk] == "github rejected pending (0 attempt(s))"


def test_the_authorization_log_filters_by_period_service_and_environment(world):
    r1, r2 = world["r1"], world["r2"]
    DeploymentRequest.objects.filter(pk=r1.pk).update(created_at=timezone.now() - timedelta(days=10))
    today = timezone.localdate()
    assert [r["request_id"] for r in rows(AUTH_LOG, Filters(date_from=today))] == [r2.pk, world["r3"].pk]
    assert [r["request_id"] for r in rows(AUTH_LOG, Filters(date_to=today - timedelta(days=1)))] == [r1.pk]
    assert [r["request_id"] for r in rows(AUTH_LOG, Filters(service="payments"))] == [r1.pk]
    assert [r["request_id"] for r in rows(AUTH_LOG, Filters(service="web", environment="staging"))] == [
        r2.pk, world["r3"].pk]
    assert rows(AUTH_LOG, Filters(service="web", environment="production")) == []


def test_the_separation_of_duties_report_lists_emergencies_refusals_and_flagged_executions(world):
    found = [(r["kind"], r["request_id"], r["person"], r["code"]) for r in rows("separation-of-duties-exceptions")]
    r1, r2, r3 = world["r1"].pk, world["r2"].pk, world["r3"].pk
    assert found == [
        ("emergency request during a freeze", r3, "dual", "emergency"),
        ("refused: change-author", r1, "carl", "change_author"),
        ("refused: self-approval", r2, "dual", "self_approval"),
        ("flagged execution", None, "ci-bot", "unauthorized"),
        ("flagged execution", r1, "ci-bot", "unauthorized"),
    ]
    emergency = rows("separation-of-duties-exceptions")[0]
    assert emergency["detail"] == "Checkout is down for everyone; hotfix."
    only_payments = rows("separation-of-duties-exceptions", Filters(service="payments"))
    assert {r["kind"] for r in only_payments} == {"refused: change-author", "flagged execution"}


def test_the_refusals_log_lists_every_refusal_with_its_code(world):
    found = [(r["code"], r["action"], r["actor"], r["service"], r["request_id"]) for r in rows("refusals")]
    assert found == [
        ("change_author", "approve", "carl", "payments", world["r1"].pk),
        ("self_approval", "approve", "dual", "web", world["r2"].pk),
    ]


def test_the_access_review_lists_current_grants_and_the_changes_of_the_period(world):
    people = world["people"]
    prod = world["prod"]
    compliance_services.suspend_user(actor=None, user=people["ben"], reason="Under investigation.")
    reviewers = Group.objects.create(name="Release reviewers")
    people["erin"].groups.add(reviewers)
    factories.grant(reviewers, "approve", prod)
    temporary = factories.approver(username="tom")
    factories.grant(temporary, "approve", prod)
    factories.revoke(temporary, "approve", prod)

    review = rows("access-review", Filters(service="payments"))
    current = {(r["permission"], r["grantee"], r["person"]): (r["effective"], r["detail"])
               for r in review if r["section"] == "current"}
    assert current == {
        ("approve", "anna", "anna"): (True, ""),
        ("approve", "ben", "ben"): (False, "suspended"),
        ("approve", "carl", "carl"): (True, ""),
        ("approve", "group Release reviewers", "erin"): (True, ""),
        ("request", "rita", "rita"): (True, ""),
    }
    changes = [(r["change"], r["permission"], r["grantee"]) for r in review if r["section"] == "change"]
    assert ("granted", "approve", "tom") in changes
    assert ("revoked", "approve", "tom") in changes
    assert changes.index(("granted", "approve", "tom")) < changes.index(("revoked", "approve", "tom"))
    assert ("granted", "approve", "group Release reviewers") in changes
    assert ("added to group", "role/group Release reviewers", "group Release reviewers") in changes
    assert all(r["service"] in ("payments", "") for r in review)
    # the web service's grants are left out by the service filter
    assert not any(r["person"] == "dual" for r in review if r["section"] == "current")


def test_an_approver_without_the_role_cannot_act_on_a_grant(world):
    prod = world["prod"]
    engineer_only = factories.engineer(username="eve")
    factories.grant(engineer_only, "approve", prod)
    review = rows("access-review", Filters(service="payments"))
    eve = [r for r in review if r["section"] == "current" and r["person"] == "eve"]
    assert [(r["effective"], r["detail"]) for r in eve] == [(False, f"not in {Role.APPROVER}")]


def test_the_authorization_log_runs_the_same_queries_for_one_row_and_fifty(environment, requester, approvers):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            produced = rows(AUTH_LOG)
        return len(queries), len(produced)

    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    factories.approve(request, approvers[0])
    assert count() == (1, 1)
    for _ in range(49):
        request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
        factories.approve(request, approvers[0], comment="ok")
    assert count() == (1, 50)


# --- exports ------------------------------------------------------------------------------------


def test_the_csv_export_streams_rows_and_neutralises_formulas(client, world):
    client.force_login(auditor())
    response = client.get(reverse("reports:export", args=[AUTH_LOG, "csv"]))
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:3] == ["Request", "Requested at (UTC)", "Service"]
    assert [row[0] for row in table[1:]] == [str(world["r1"].pk), str(world["r2"].pk), str(world["r3"].pk)]
    login = table[0].index("CI identity")
    assert table[1][login] == "'" + EVIL_LOGIN
    assert table[1][table[0].index("Unauthorized execution")] == "yes"


@pytest.mark.parametrize("value", ["=1+2", "+1", "-2", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_every_formula_prefix_is_neutralised(value):
    assert exporters.neutralise(value) == "'" + value
    assert exporters.neutralise("safe " + value) == "safe " + value


def test_the_json_export_is_one_array_of_rows(client, world):
    client.force_login(auditor())
    response = client.get(reverse("reports:export", args=[AUTH_LOG, "json"]), {"service": "payments"})
    assert response.status_code == 200 and response.streaming
    body = json.loads(b"".join(response.streaming_content))
    assert [row["request_id"] for row in body] == [world["r1"].pk]
    assert body[0]["requester_login"] == EVIL_LOGIN  # JSON keeps values exactly
    assert body[0]["unauthorized"] is True and body[0]["commit_count"] == 3


def test_the_xlsx_export_opens_in_openpyxl_with_strings_kept_as_text(client, world):
    client.force_login(auditor())
    response = client.get(reverse("reports:export", args=[AUTH_LOG, "xlsx"]))
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook[workbook.sheetnames[0]]
    table = [[cell.value for cell in row] for row in sheet.iter_rows()]
    header = table[0]
    assert header[0] == "Request" and len(table) == 4
    assert table[1][0] == world["r1"].pk
    login_cell = sheet.cell(row=2, column=header.index("CI identity") + 1)
    assert login_cell.value == EVIL_LOGIN and login_cell.data_type == "s"  # text, never a formula


def test_the_pdf_export_has_the_rows_and_caps_them_with_a_note(client, world, settings):
    client.force_login(auditor())
    response = client.get(reverse("reports:export", args=["refusals", "pdf"]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.content)).pages)
    assert "Refusals log" in text and "self_approval" in text and "change_author" in text
    assert "only the first" not in text
    settings.PORTAL_REPORT_PDF_MAX_ROWS = 1
    response = client.get(reverse("reports:export", args=["refusals", "pdf"]))
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.content)).pages)
    assert "only the first 1 rows" in text
    assert "change_author" in text and "self_approval" not in text


def test_the_pdf_renderer_never_fetches_external_urls(httpserver):
    httpserver.expect_request("/tracker.png").respond_with_data(b"", content_type="image/png")
    html = (
        f'<p>hello</p><img src="{httpserver.url_for("/tracker.png")}">'
        f'<link rel="stylesheet" href="{httpserver.url_for("/style.css")}">'
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
    )
    pdf = exporters.html_to_pdf(html)
    assert pdf.startswith(b"%PDF")
    assert httpserver.log == []
    with pytest.raises(ValueError, match="External resources are disabled"):
        exporters.refuse_external_urls("file:///etc/passwd")


def test_the_evidence_bundle_holds_every_report_with_verifiable_hashes(client, world):
    person = auditor(username="audrey")
    client.force_login(person)
    today = timezone.localdate().isoformat()
    response = client.get(reverse("reports:bundle"), {"from": today, "to": today})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["generated_by"] == "audrey"
    assert manifest["filters"] == {"from": today, "to": today, "service": "", "environment": ""}
    assert manifest["audit_chain_head"]["hash"] == registry.audit_chain_head()["hash"]  # the audit chain's head
    names = {entry["name"] for entry in manifest["files"]}
    for report in registry.all_reports():
        assert {f"{report.slug}.csv", f"{report.slug}.json"} <= names
    assert set(archive.namelist()) == names | {"manifest.json", "manifest.json.sig"}
    for entry in manifest["files"]:
        data = archive.read(entry["name"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    log = json.loads(archive.read(f"{AUTH_LOG}.json"))
    assert [row["request_id"] for row in log] == [world["r1"].pk, world["r2"].pk, world["r3"].pk]


def test_the_bundle_manifest_carries_the_registered_audit_chain_head(world, tmp_path):
    def head():
        return {"entry_id": 42, "hash": "ab" * 32}

    registry.register_chain_head_provider(head)
    try:
        with open(tmp_path / "bundle.zip", "wb") as target:
            manifest = exporters.write_bundle(target, filters=Filters(), generated_by="x",
                                              reports=[registry.get("refusals")])
    finally:
        registry.unregister_chain_head_provider(head)
    assert manifest["audit_chain_head"] == {"entry_id": 42, "hash": "ab" * 32}
    with zipfile.ZipFile(tmp_path / "bundle.zip") as archive:
        assert json.loads(archive.read("manifest.json"))["audit_chain_head"]["entry_id"] == 42
    assert registry.audit_chain_head()["hash"] != "ab" * 32  # back to the portal's own chain


def test_every_export_is_recorded_with_its_filters(client, world):
    person = auditor(username="audrey")
    client.force_login(person)
    client.get(reverse("reports:export", args=["refusals", "csv"]), {"service": "payments"})
    client.get(reverse("reports:detail", args=["refusals"]))
    client.get(reverse("reports:bundle"), {"from": "2026-01-01"})
    client.get(reverse("reports_api:detail", args=["refusals"]), {"format": "csv"})
    recorded = list(ReportExport.objects.order_by("id").values_list("user__username", "report", "format", "channel",
                                                                     "filters"))
    empty = {"from": "", "to": "", "service": "", "environment": ""}
    assert recorded == [
        ("audrey", "refusals", "csv", "web", {**empty, "service": "payments"}),
        ("audrey", "refusals", "html", "web", empty),
        ("audrey", "bundle", "zip", "web", {**empty, "from": "2026-01-01"}),
        ("audrey", "refusals", "csv", "api", empty),
    ]
    exports = rows("report-exports")
    assert [r["report"] for r in exports] == ["refusals", "refusals", "bundle", "refusals"]
    assert exports[0]["filters"] == "service=payments"


# --- who may read -------------------------------------------------------------------------------


def test_auditors_and_administrators_read_reports_and_nobody_else(client, world):
    people = world["people"]
    readers = [auditor(), factories.UserFactory(roles=[Role.ADMINISTRATOR])]
    # the neighbouring roles who act on deployments, and an outsider with no role at all
    refused_people = [people["rita"], people["anna"], factories.UserFactory(username="outsider")]
    urls = [
        reverse("reports:index"),
        reverse("reports:detail", args=[AUTH_LOG]),
        reverse("reports:export", args=[AUTH_LOG, "csv"]),
        reverse("reports:bundle"),
        reverse("reports_api:list"),
        reverse("reports_api:detail", args=[AUTH_LOG]),
    ]
    for person in readers:
        client.force_login(person)
        for url in urls:
            assert client.get(url).status_code == 200, (person, url)
    for person in refused_people:
        client.force_login(person)
        for url in urls:
            assert client.get(url).status_code == 403, (person, url)
    client.logout()
    for url in urls[:4]:
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    for url in urls[4:]:
        assert client.get(url).status_code in (401, 403)
    assert not ReportExport.objects.filter(user__in=refused_people).exists()


def test_an_auditor_can_change_nothing(client, world):
    person = auditor(is_staff=True)
    client.force_login(person)
    for url in (reverse("reports:index"), reverse("reports:detail", args=[AUTH_LOG]),
                reverse("reports:export", args=[AUTH_LOG, "csv"]), reverse("reports:bundle")):
        assert client.post(url).status_code == 405
    for method in (client.post, client.put, client.delete):
        assert method(reverse("reports_api:detail", args=[AUTH_LOG])).status_code in (403, 405)
    assert all(perm.split(".", 1)[1].startswith("view_") for perm in person.get_all_permissions())
    client.get(reverse("reports:detail", args=[AUTH_LOG]))
    export = ReportExport.objects.get()
    change = reverse("admin:compliance_reportexport_change", args=[export.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"report": "tampered"}).status_code == 403
    delete = reverse("admin:compliance_reportexport_delete", args=[export.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    export.refresh_from_db()
    assert export.report == AUTH_LOG


def test_the_index_lists_every_report_and_rejects_bad_filters(client, world):
    client.force_login(auditor())
    page = client.get(reverse("reports:index")).content.decode()
    for report in registry.all_reports():
        assert report.title in page
    assert client.get(reverse("reports:index"), {"from": "2026-02-01", "to": "2026-01-01"}).status_code == 400
    assert client.get(reverse("reports:export", args=[AUTH_LOG, "csv"]), {"from": "yesterday"}).status_code == 400
    assert client.get(reverse("reports:export", args=[AUTH_LOG, "exe"])).status_code == 404
    assert client.get(reverse("reports:detail", args=["no-such-report"])).status_code == 404
    api = client.get(reverse("reports_api:detail", args=[AUTH_LOG]), {"format": "xml"})
    assert api.status_code == 400


def test_the_api_serves_json_and_csv(client, world):
    client.force_login(auditor())
    listing = client.get(reverse("reports_api:list")).json()
    assert AUTH_LOG in [entry["slug"] for entry in listing]
    body = json.loads(b"".join(client.get(reverse("reports_api:detail", args=["refusals"])).streaming_content))
    assert [row["code"] for row in body] == ["change_author", "self_approval"]
    response = client.get(reverse("reports_api:detail", args=["refusals"]), {"format": "csv", "service": "web"})
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [row[1] for row in table[1:]] == ["self_approval"]


# --- the registry -------------------------------------------------------------------------------


def test_the_registry_refuses_a_second_report_with_the_same_slug():
    with pytest.raises(ImproperlyConfigured):
        registry.register(Report(slug=AUTH_LOG, title="x", description="", columns=(), rows=lambda f: iter(())))
    with pytest.raises(ImproperlyConfigured):
        registry.register(Report(slug="bundle", title="x", description="", columns=(), rows=lambda f: iter(())))
    assert registry.get(AUTH_LOG) is deployment_reports.AUTHORIZATION_LOG


def test_a_registered_report_appears_everywhere(client, db):
    extra = Report(slug="training-compliance-test", title="Training (test)", description="d",
                   columns=(Column("who", "Who"),), rows=lambda filters: iter([{"who": "@alice"}]), order=1)
    registry.register(extra)
    try:
        client.force_login(auditor())
        assert "Training (test)" in client.get(reverse("reports:index")).content.decode()
        response = client.get(reverse("reports:export", args=[extra.slug, "csv"]))
        assert b"".join(response.streaming_content).decode("utf-8-sig") == "Who\r\n'@alice\r\n"
    finally:
        registry.unregister(extra.slug)
