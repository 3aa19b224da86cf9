"""The compliance reports against known answers: training compliance, violations and their handling,
audit-log review sign-offs; the audit-chain head in the evidence bundle; the training panel."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance.audit.chain import seal_chain
from compliance.audit.reviews import record_audit_review
from compliance.audit.verify import verify_chain
from compliance.models import Attestation, RoleAssignment, Severity, ViolationKind, ViolationStatus
from compliance.people import suspensions as compliance_services
from compliance.people.identity import SYSTEM_USERNAME
from compliance.people.roles import Role
from compliance.reports import registry
from compliance.reports.oversight import _covered_gaps
from compliance.reports.registry import Filters
from compliance.violations import services as violations
from tests import factories

pytestmark = pytest.mark.django_db


def rows(slug: str, filters: Filters | None = None) -> list[dict]:
    return list(registry.get(slug).iter_rows(filters or Filters()))


@pytest.fixture
def administrator():
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")


@pytest.fixture
def auditor():
    return factories.UserFactory(username="audrey", roles=[Role.AUDITOR])


# --- training compliance --------------------------------------------------------------------------


@pytest.fixture
def people(administrator):
    """eve: a trained engineer. dan: an approver who never trained, role gained 30 days ago. sam: a
    trained approver an administrator suspended. Plus people the report must leave out."""
    eve = factories.engineer(username="eve")
    dan = factories.approver(username="dan", trained=False)
    RoleAssignment.objects.filter(user=dan).update(assigned_at=timezone.now() - timedelta(days=30))
    sam = factories.approver(username="sam")
    compliance_services.suspend_user(actor=administrator, user=sam, reason="Approved his own hotfix.")
    factories.engineer(username="gone", is_active=False)
    factories.UserFactory(username="ci-bot", is_service_account=True, roles=[Role.ENGINEER], trained=False)
    factories.UserFactory(username="nobody")  # holds no role
    return {"eve": eve, "dan": dan, "sam": sam}


def test_training_compliance_shows_each_persons_standing_on_each_required_course(people):
    report = rows("training-compliance")
    standing = [r for r in report if r["section"] == "standing"]
    assert {r["person"] for r in standing} == {"ada", "dan", "eve", "sam"}  # active role-holders only
    eve = [r for r in standing if r["person"] == "eve"]
    assert eve and all(r["status"] == "current" and r["acting_allowed"] is True for r in eve)
    latest = Attestation.objects.filter(user=people["eve"]).first()
    assert all(r["policy_version"] == latest.policy_version and len(r["policy_sha256"]) == 64 for r in eve)
    assert all(r["roles"] == str(Role.ENGINEER) for r in eve)
    dan = [r for r in standing if r["person"] == "dan"]
    assert dan and all(
        r["status"] == "overdue" and r["detail"] == "never completed" and r["acting_allowed"] is False
        and r["occurred_at"] == "" for r in dan
    )
    sam = [r for r in standing if r["person"] == "sam"]
    assert sam and all(r["status"] == "current" and r["suspended"] is True and r["acting_allowed"] is False
                       for r in sam)


def test_training_compliance_lists_the_periods_attestations_and_suspensions(people, administrator):
    report = rows("training-compliance")
    attested = [r for r in report if r["section"] == "attestation"]
    assert len(attested) == Attestation.objects.count() > 0
    assert {r["person"] for r in attested} == {"eve", "gone", "sam"}  # former staff's evidence stays
    assert all(r["status"] == "attested" and r["occurred_at"].endswith("Z") for r in attested)
    started = [r for r in report if r["section"] == "suspension started"]
    assert [(r["person"], r["detail"], r["suspended"]) for r in started] == [
        ("sam", "by ada: Approved his own hotfix.", True)
    ]
    compliance_services.lift_suspension(actor=administrator, suspension=people["sam"].suspensions.get(),
                                        reason="Retrained and reviewed.")
    lifted = [r for r in rows("training-compliance") if r["section"] == "suspension lifted"]
    assert [(r["person"], r["detail"], r["suspended"]) for r in lifted] == [
        ("sam", "by ada: Retrained and reviewed.", False)
    ]
    yesterday = timezone.localdate() - timedelta(days=1)
    earlier = rows("training-compliance", Filters(date_from=yesterday - timedelta(days=7), date_to=yesterday))
    assert {r["section"] for r in earlier} == {"standing"}  # nothing happened then; standing is always now


def test_the_training_report_works_out_standings_in_a_fixed_number_of_queries(people):
    with CaptureQueriesContext(connection) as few:
        rows("training-compliance")
    for i in range(6):
        factories.approver(username=f"extra{i}", trained=i % 2 == 0)
    with CaptureQueriesContext(connection) as more:
        assert len([r for r in rows("training-compliance") if r["person"].startswith("extra")]) >= 6
    assert len(more) == len(few), [q["sql"] for q in more.captured_queries]


# --- violations -----------------------------------------------------------------------------------


def open_one(key: str, **kwargs):
    kwargs.setdefault("kind", ViolationKind.UNAUTHORIZED_DEPLOYMENT)
    kwargs.setdefault("severity", Severity.CRITICAL)
    return violations.open_violation(title=f"Violation {key}", evidence={"key": key}, dedup_key=key,
                                     subject="payments/production", **kwargs)


def test_the_violations_report_shows_each_violation_and_every_step_of_its_handling(administrator):
    handled = open_one("handled")
    violations.transition_violation(actor=administrator, violation=handled, to_status=ViolationStatus.INVESTIGATING,
                                    notes="Checking the CI logs.")
    violations.transition_violation(actor=administrator, violation=handled, to_status=ViolationStatus.RESOLVED,
                                    notes="Rolled back; the deployer's token was revoked.")
    late = open_one("late", kind=ViolationKind.UNAUTHORIZED_PUSH, severity=Severity.HIGH, source="github",
                    detected_at=timezone.now() - timedelta(hours=30))
    assert violations.escalate_overdue_violations(actor=None) == 1
    old = open_one("old", detected_at=timezone.now() - timedelta(days=40))

    report = {r["violation_id"]: r for r in rows("violations")}
    assert set(report) == {handled.pk, late.pk, old.pk}
    row = report[handled.pk]
    assert (row["kind"], row["severity"], row["status"], row["owner"]) == (
        "unauthorized_deployment", "critical", "resolved", "ada")
    assert row["acknowledged_in_time"] is True
    assert row["resolution_notes"] == "Rolled back; the deployer's token was revoked."
    steps = row["handling"].split(" | ")
    assert [s.split(" ", 1)[1] for s in steps] == [
        f"{SYSTEM_USERNAME} opened ->open: Detected by event.",
        "ada transition open->investigating: Checking the CI logs.",
        "ada transition investigating->resolved: Rolled back; the deployer's token was revoked.",
    ]
    assert all(s[:20].endswith("Z") for s in steps)  # each step starts with its UTC time
    row = report[late.pk]
    assert (row["status"], row["source"], row["acknowledged_in_time"], row["acknowledged_at"]) == (
        "open", "github", None, None)
    assert row["escalated_at"].endswith("Z") and "escalated: Not acknowledged by" in row["handling"]

    this_month = rows("violations", Filters(date_from=timezone.localdate() - timedelta(days=7)))
    assert {r["violation_id"] for r in this_month} == {handled.pk, late.pk}


def test_a_violation_acknowledged_after_its_deadline_is_marked_late(administrator, settings):
    late = open_one("slow", detected_at=timezone.now() - timedelta(hours=25))
    violations.transition_violation(actor=administrator, violation=late, to_status=ViolationStatus.INVESTIGATING,
                                    notes="Looking now.")
    (row,) = rows("violations")
    assert row["acknowledged_in_time"] is False and row["status"] == "investigating"


# --- audit-log reviews ----------------------------------------------------------------------------


def test_covered_gaps_finds_every_day_no_review_covers():
    from datetime import date

    d = date.fromisoformat
    reviews = [
        (d("2026-10-01"), d("2026-10-10")), (d("2026-10-05"), d("2026-10-12")), (d("2026-10-20"), d("2026-10-25")),
    ]
    assert _covered_gaps(reviews, d("2026-09-28"), d("2026-10-31")) == [
        (d("2026-09-28"), d("2026-09-30")), (d("2026-10-13"), d("2026-10-19")), (d("2026-10-26"), d("2026-10-31")),
    ]
    assert _covered_gaps(reviews, d("2026-10-02"), d("2026-10-09")) == []
    assert _covered_gaps([], d("2026-10-02"), d("2026-10-02")) == [(d("2026-10-02"), d("2026-10-02"))]


def test_the_audit_review_report_lists_sign_offs_the_days_not_reviewed_and_whether_one_is_overdue(
    administrator, settings
):
    settings.PORTAL_AUDIT_REVIEW_INTERVAL_DAYS = 7
    today = timezone.localdate()
    first = record_audit_review(actor=administrator, period_start=today - timedelta(days=40),
                                period_end=today - timedelta(days=31), scope="Production approvals",
                                findings="No exceptions.")
    record_audit_review(actor=administrator, period_start=today - timedelta(days=20),
                        period_end=today - timedelta(days=11), scope="Grants and revocations",
                        findings="One stale grant revoked.")
    report = rows("audit-reviews", Filters(date_from=today - timedelta(days=40), date_to=today))
    reviews = [r for r in report if r["section"] == "review"]
    assert [(r["period_start"], r["signed_off_by"], r["findings"]) for r in reviews] == [
        (first.period_start.isoformat(), "ada", "No exceptions."),
        ((today - timedelta(days=20)).isoformat(), "ada", "One stale grant revoked."),
    ]
    gaps = [(r["period_start"], r["period_end"]) for r in report if r["section"] == "not reviewed"]
    assert gaps == [
        ((today - timedelta(days=30)).isoformat(), (today - timedelta(days=21)).isoformat()),
        ((today - timedelta(days=10)).isoformat(), today.isoformat()),
    ]
    (status,) = [r for r in report if r["section"] == "status"]
    assert status["findings"].startswith("OVERDUE by 4 day(s)")
    assert status["period_end"] == (today - timedelta(days=4)).isoformat()
    settings.PORTAL_AUDIT_REVIEW_INTERVAL_DAYS = 30
    (status,) = [r for r in rows("audit-reviews") if r["section"] == "status"]
    assert status["findings"].startswith("Next review due by")


# --- the evidence bundle and the exports ---------------------------------------------------------


def test_the_bundle_manifest_names_the_audit_chain_head_and_the_chain_verifies_through_it(
    client, auditor, administrator
):
    open_one("evidence")
    seal_chain()
    client.force_login(auditor)
    response = client.get(reverse("reports:bundle"))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(archive.read("manifest.json"))
    head = manifest["audit_chain_head"]
    assert head["seq"] >= 1 and len(head["hash"]) == 64 and head["sealed_at"].endswith("Z")
    assert head["entry"].startswith("auditlog.logentry #")
    report = verify_chain()
    assert report.ok and report.head_hash == head["hash"]
    names = {entry["name"] for entry in manifest["files"]}
    for slug in ("training-compliance", "violations", "audit-reviews"):
        assert f"{slug}.csv" in names


def test_each_compliance_report_exports_to_csv_with_its_columns(client, auditor, people):
    open_one("csv")
    client.force_login(auditor)
    for slug in ("training-compliance", "violations", "audit-reviews"):
        response = client.get(reverse("reports:export", args=[slug, "csv"]))
        assert response.status_code == 200, slug
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        header, *body = list(csv.reader(io.StringIO(text)))
        assert header == list(registry.get(slug).labels)
        assert body, slug


# --- the monitoring page's training panel ---------------------------------------------------------


def test_the_monitoring_page_shows_training_compliance_per_role_and_who_may_not_act(client, people, administrator):
    client.force_login(administrator)
    html = client.get(reverse("monitoring:index")).content.decode()
    assert "Training compliance per role" in html
    # Approvers: dan (untrained) and sam (suspended) may not act; the engineer eve may.
    assert "<td>Deployment Approvers</td><td>2</td><td>0</td>" in html
    assert "<td>Engineers</td><td>1</td><td>1</td>" in html
    assert "<td>Administrators</td><td>1</td><td>0</td>" in html  # ada has not done hers yet
    assert "3 people may not act" in html
    assert "never completed" in html and "suspended since" in html


@pytest.mark.parametrize("slug", ["training-compliance", "violations", "audit-reviews"])
def test_each_compliance_report_opens_in_its_readers(client, auditor, people, administrator, slug):
    """XLSX in openpyxl, PDF in pypdf, JSON in json: the same rows the registry yields."""
    import openpyxl
    import pypdf

    handled = open_one("readers")
    violations.transition_violation(actor=administrator, violation=handled, to_status=ViolationStatus.INVESTIGATING,
                                    notes="Reading the deploy log.")
    record_audit_review(actor=administrator, period_start=timezone.localdate() - timedelta(days=9),
                        period_end=timezone.localdate() - timedelta(days=2), scope="Approvals", findings="None.")
    expected = rows(slug)
    client.force_login(auditor)
    body = b"".join(client.get(reverse("reports:export", args=[slug, "json"])).streaming_content)
    assert json.loads(body) == json.loads(json.dumps(expected, default=str))
    response = client.get(reverse("reports:export", args=[slug, "xlsx"]))
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).worksheets[0]
    table = list(sheet.iter_rows(values_only=True))
    assert list(table[0]) == list(registry.get(slug).labels) and len(table) == len(expected) + 1
    response = client.get(reverse("reports:export", args=[slug, "pdf"]))
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.content)).pages)
    assert registry.get(slug).title in text
    marker = {"training-compliance": "never completed", "violations": "Reading the deploy log.",
              "audit-reviews": "Approvals"}[slug]
    assert marker in text.replace("\n", " ")
