"""Training pages: the policy, my training, a course, the compliance matrix, its CSV export and bulk
reminders, and the admin index figures. Three people for each page: the one who may, a neighbouring
role who may not, and an outsider."""

import csv
import io
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from compliance.models import Attestation, PolicyDocument, QuizAttempt, Suspension, TrainingCourse
from compliance.people import suspensions
from compliance.people.roles import Role
from compliance.training import selectors, services
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return factories.UserFactory(roles=[Role.ADMINISTRATOR], is_staff=True, username="ada")


@pytest.fixture
def auditor():
    return factories.UserFactory(roles=[Role.AUDITOR], is_staff=True, username="aud")


def login_redirect(response):
    return response.status_code == 302 and reverse("login") in response["Location"]


# --- policy ---------------------------------------------------------------------------------------


def test_the_current_policy_is_at_a_stable_url_for_every_signed_in_person(client):
    url = reverse("compliance:policy_current")
    assert url == "/policy/"
    assert login_redirect(client.get(url))
    services.publish_policy(
        actor=None,
        title="Deployment Authorization Policy",
        version="1.1",
        body="# Rules\n<script>alert('x')</script>\nSecond **version**.",
    )
    client.force_login(factories.UserFactory())  # no role at all: still may read the policy
    response = client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Version 1.1" in body and "<strong>version</strong>" in body
    assert "<script>alert" not in body
    assert PolicyDocument.objects.get(version="1.1").sha256 in body
    assert client.post(url).status_code == 405


# --- my training and a course ---------------------------------------------------------------------


def test_my_training_shows_due_overdue_and_done(client):
    url = reverse("compliance:my_training")
    assert url == "/training/"
    assert login_redirect(client.get(url))
    person = factories.approver(trained=False)
    factories.train(person, [TrainingCourse.objects.get(slug="deployment-authorization-policy")])
    client.force_login(person)
    body = client.get(url).content.decode()
    assert "Deployment approver duties" in body and "never completed" in body
    assert "valid until" in body
    assert "Training due" in body  # the banner


def test_completing_a_course_in_the_browser_records_the_attestation_with_the_ip(client):
    person = factories.approver(trained=False)
    course = TrainingCourse.objects.get(slug="deployment-approver")
    url = reverse("compliance:course", args=[course.slug])
    assert login_redirect(client.get(url))
    client.force_login(person)
    page = client.get(url)
    assert page.status_code == 200
    assert "version 1.0" in page.content.decode()
    wrong = {f"q{q.pk}": (q.correct_choice + 1) % len(q.choices) for q in course.questions.all()}
    response = client.post(url, {**wrong, "confirm": "on"})
    assert response.status_code == 400
    assert "pass mark is 100%" in response.content.decode()
    assert QuizAttempt.objects.filter(user=person, passed=False).exists()
    right = {f"q{q.pk}": q.correct_choice for q in course.questions.all()}
    response = client.post(url, {**right, "confirm": "on"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302 and response["Location"] == reverse("compliance:my_training")
    attestation = Attestation.objects.get(user=person, course=course)
    assert attestation.ip_address == "10.1.2.3" and attestation.policy_version == "1.0"


def test_a_course_page_refuses_unknown_or_retired_courses(client):
    client.force_login(factories.engineer())
    assert client.get(reverse("compliance:course", args=["no-such-course"])).status_code == 404
    TrainingCourse.objects.filter(slug="portal-administrator").update(is_active=False)
    assert client.get(reverse("compliance:course", args=["portal-administrator"])).status_code == 404


def test_a_suspension_shows_in_an_open_session_at_the_next_page(client, admin):
    person = factories.approver()
    client.force_login(person)
    assert "suspended" not in client.get("/").content.decode()
    suspensions.suspend_user(actor=admin, user=person, reason="Approved outside the portal")
    body = client.get("/").content.decode()
    assert "Your deployment privileges are suspended" in body and "Approved outside the portal" in body


# --- matrix, export and reminders -----------------------------------------------------------------


def test_the_matrix_is_for_administrators_and_auditors(client, admin, auditor):
    url = reverse("compliance:matrix")
    assert login_redirect(client.get(url))
    late = factories.approver(trained=False, username="late-larry")
    for person in (admin, auditor):
        client.force_login(person)
        response = client.get(url)
        assert response.status_code == 200
        assert "late-larry" in response.content.decode()
    client.force_login(factories.engineer())  # a neighbouring role
    assert client.get(url).status_code == 403
    client.force_login(late)
    assert client.get(url).status_code == 403


def test_only_administrators_see_the_bulk_reminder_button(client, admin, auditor):
    factories.engineer(trained=False)
    url = reverse("compliance:matrix")
    client.force_login(admin)
    assert "Send reminders" in client.get(url).content.decode()
    client.force_login(auditor)
    assert "Send reminders" not in client.get(url).content.decode()


def test_matrix_filters(client, admin):
    overdue = factories.engineer(username="olly-overdue")
    expired = timezone.now() - timedelta(days=3)
    Attestation.objects.filter(user=overdue).update(attested_at=expired - timedelta(days=365), expires_at=expired)
    overdue.role_assignments.update(assigned_at=expired - timedelta(days=400))
    factories.engineer(username="dora-due", trained=False)
    suspended = factories.approver(username="sam-suspended")
    suspensions.suspend_user(actor=admin, user=suspended, reason="Violation")
    fine = factories.approver(username="fiona-fine")
    client.force_login(admin)

    def names(status):
        body = client.get(reverse("compliance:matrix"), {"status": status}).content.decode()
        return {n for n in ("olly-overdue", "dora-due", "sam-suspended", "fiona-fine") if n in body}

    assert names("overdue") == {"olly-overdue"}
    assert names("due_soon") == {"dora-due"}
    assert names("suspended") == {"sam-suspended"}
    assert names("") == {"olly-overdue", "dora-due", "sam-suspended", "fiona-fine"}
    assert fine


def test_the_matrix_query_count_does_not_grow_with_people(client, admin, django_assert_max_num_queries):
    client.force_login(admin)
    for _ in range(2):
        factories.approver()
    with django_assert_max_num_queries(20) as few:
        client.get(reverse("compliance:matrix"))
    for _ in range(6):
        factories.approver()
        factories.engineer(trained=False)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("compliance:matrix"))


def test_the_csv_export_neutralises_formulas_and_is_refused_to_others(client, admin, auditor):
    url = reverse("compliance:matrix_csv")
    assert login_redirect(client.get(url))
    factories.engineer(username="evil", first_name='=HYPERLINK("http://x")', last_name="@x", trained=False)
    for person in (admin, auditor):
        client.force_login(person)
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[0][:3] == ["username", "name", "roles"]
        evil = next(row for row in rows if row[0] == "evil")
        assert evil[1].startswith("'=HYPERLINK")
    client.force_login(factories.approver())
    assert client.get(url).status_code == 403


def test_bulk_reminders_for_administrators_only(client, admin, auditor, django_capture_on_commit_callbacks):
    url = reverse("compliance:matrix_remind")
    late = factories.engineer(trained=False, email="late@example.com")
    assert login_redirect(client.post(url, {"user_ids": [late.pk]}))
    mail.outbox.clear()
    for person in (auditor, factories.approver()):
        client.force_login(person)
        assert client.post(url, {"user_ids": [late.pk]}).status_code == 403
    assert mail.outbox == []
    client.force_login(admin)
    assert client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"user_ids": [late.pk], "status": "overdue"})
    assert response.status_code == 302 and response["Location"].endswith("?status=overdue")
    assert [m.to for m in mail.outbox] == [["late@example.com"]]


# --- admin -----------------------------------------------------------------------------------------


def test_the_admin_index_shows_per_role_compliance_to_administrators_and_auditors(client, admin, auditor):
    factories.approver()
    factories.approver(trained=False)
    for person in (admin, auditor):
        client.force_login(person)
        body = client.get(reverse("admin:index")).content.decode()
        assert "Training compliance" in body
        assert "50% compliant (1 of 2)" in body
    client.force_login(factories.engineer())
    assert client.get(reverse("admin:index")).status_code == 302
    assert selectors.role_compliance(user=admin)


def test_administrators_publish_policy_versions_in_the_admin_and_never_edit_them(client, admin, auditor):
    client.force_login(admin)
    add = reverse("admin:compliance_policydocument_add")
    data = {
        "title": "Deployment Authorization Policy",
        "body": "# New\nText",
        "effective_at_0": "2026-01-01",
        "effective_at_1": "00:00:00",
    }
    response = client.post(add, {**data, "version": "1.0"})
    assert response.status_code == 200 and "not newer" in response.content.decode()
    response = client.post(add, {**data, "version": "2.0"})
    assert response.status_code == 302, response.content.decode()[:3000]
    v2 = PolicyDocument.objects.get(version="2.0")
    assert v2.published_by == admin and v2.major == 2
    change = reverse("admin:compliance_policydocument_change", args=[v2.pk])
    client.post(change, {**data, "version": "2.0", "body": "tampered"})
    v2.refresh_from_db()
    assert v2.body == "# New\nText"
    client.force_login(auditor)
    assert client.get(add).status_code == 403


def test_training_evidence_is_read_only_in_the_admin(client, admin):
    person = factories.engineer()
    attestation = Attestation.objects.filter(user=person).first()
    client.force_login(admin)
    assert client.get(reverse("admin:compliance_attestation_changelist")).status_code == 200
    assert client.get(reverse("admin:compliance_attestation_add")).status_code == 403
    url = reverse("admin:compliance_attestation_delete", args=[attestation.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403


def test_administrators_suspend_manually_in_the_admin_and_lift_with_the_action(client, admin):
    person = factories.approver()
    client.force_login(admin)
    response = client.post(
        reverse("admin:compliance_suspension_add"),
        {
            "user": person.pk,
            "scope": "all",
            "trigger": "violation",
            "reason": "Deployed outside the portal",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    suspension = Suspension.objects.get(user=person)
    assert suspension.created_by == admin
    client.post(
        reverse("admin:compliance_suspension_changelist"), {"action": "lift", "_selected_action": [suspension.pk]}
    )
    suspension.refresh_from_db()
    assert suspension.lifted_by == admin and suspension.lift_reason


def test_the_admin_refuses_a_second_active_training_suspension(client, admin):
    person = factories.approver()
    suspensions.suspend_user(actor=admin, user=person, reason="Lapsed", trigger="training_lapsed")
    client.force_login(admin)
    response = client.post(
        reverse("admin:compliance_suspension_add"),
        {
            "user": person.pk,
            "scope": "all",
            "trigger": "training_lapsed",
            "reason": "Lapsed again",
        },
    )
    assert response.status_code == 200
    assert "already suspended for lapsed training" in response.content.decode()
    assert Suspension.objects.filter(user=person).count() == 1


def test_my_training_page_query_count_is_fixed(client, django_assert_max_num_queries):
    person = factories.UserFactory(roles=[Role.ENGINEER, Role.APPROVER, Role.ADMINISTRATOR])
    client.force_login(person)
    with django_assert_max_num_queries(25):
        assert client.get(reverse("compliance:my_training")).status_code == 200


def test_the_user_admin_sends_bulk_reminders_for_administrators_only(
    client, admin, auditor, django_capture_on_commit_callbacks
):
    late = factories.engineer(trained=False, email="late@example.com")
    changelist = reverse("admin:compliance_user_changelist")
    data = {"action": "send_training_reminders", "_selected_action": [late.pk]}
    mail.outbox.clear()
    client.force_login(auditor)
    client.post(changelist, data)
    assert mail.outbox == []
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(changelist, data)
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["late@example.com"]]
