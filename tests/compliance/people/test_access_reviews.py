"""Periodic access reviews: a reviewer confirms or revokes each holder of privileged access; a
revocation takes effect at once; the sign-off and each decision are evidence (audit trail, report);
an overdue review shows on the monitoring page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from compliance.errors import RuleViolation
from compliance.models import AccessReview, AccessReviewItem, PrivilegeChange
from compliance.people import access_reviews
from compliance.people.roles import Role
from compliance.reports.registry import Filters
from compliance.reports.registry import get as get_report
from deployments.gate.permissions import can_act
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(environment):
    ada = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True)
    otto = factories.UserFactory(username="otto", roles=[Role.ADMINISTRATOR], is_staff=True)
    dave = factories.UserFactory(username="dave", roles=[Role.APPROVER])
    assign_perm("deployments.approve_deployment", dave, environment)
    frank = factories.UserFactory(username="frank", roles=[Role.AUDITOR], is_staff=True)
    return {"ada": ada, "otto": otto, "dave": dave, "frank": frank}


def _post(client, **data):
    return client.post(reverse("compliance:access_reviews"), data)


def test_a_review_confirms_and_revokes_each_holder_and_is_signed_off(client, people, environment):
    ada, otto, dave = people["ada"], people["otto"], people["dave"]
    assert can_act(dave, "approve", environment)
    client.force_login(ada)
    assert _post(client, action="start").status_code == 302
    review = AccessReview.objects.get(status="open")
    items = {(i.privilege, i.grantee): i for i in review.items.all()}
    assert ("approve_deployment", "dave") in items and ("the Deployment Approvers role", "dave") in items
    assert ("the Administrators role", "ada") in items and ("staff status", "frank") in items
    # nobody reviews their own access
    own = items[("the Administrators role", "ada")]
    assert _post(client, action="decide", item=own.pk, decision="confirmed").status_code == 403
    assert PrivilegeChange.objects.filter(kind="refused", actor=ada, code="self_review").exists()
    # a revocation needs a reason, then takes effect at once
    grant = items[("approve_deployment", "dave")]
    assert _post(client, action="decide", item=grant.pk, decision="revoked", reason="").status_code == 400
    assert _post(client, action="decide", item=grant.pk, decision="revoked", reason="left the team").status_code == 302
    assert not can_act(dave, "approve", environment)
    assert PrivilegeChange.objects.filter(kind="review_revoked", subject=dave, actor=ada).exists()
    assert PrivilegeChange.objects.filter(kind="permission_revoked", subject=dave, actor=ada).exists()
    # signing off waits for every item
    assert _post(client, action="sign_off", review=review.pk).status_code == 400
    for item in review.items.filter(decision="pending"):
        reviewer = otto if item.subject == ada else ada
        access_reviews.decide_review_item(actor=reviewer, item=item, decision="confirmed")
    assert _post(client, action="sign_off", review=review.pk, notes="quarterly").status_code == 302
    review.refresh_from_db()
    assert review.status == "signed_off" and review.signed_off_by == ada
    signed = PrivilegeChange.objects.get(kind="review_signed_off")
    assert signed.details["revoked"] == 1 and signed.details["confirmed"] == review.items.count() - 1
    rows = list(get_report("access-reviews").rows(Filters()))
    assert {"grantee": "dave", "decision": "revoked", "reason": "left the team"}.items() <= next(
        r for r in rows if r["privilege"] == "approve_deployment").items()
    assert all(r["signed_off_by"] == "ada" for r in rows)


def test_three_people_on_the_review_page(client, people):
    """The administrator may act; the auditor reads only; the approver is refused."""
    client.force_login(people["frank"])
    assert client.get(reverse("compliance:access_reviews")).status_code == 200
    assert _post(client, action="start").status_code == 403
    assert not AccessReview.objects.exists()
    client.force_login(people["dave"])
    assert client.get(reverse("compliance:access_reviews")).status_code == 403
    with pytest.raises(RuleViolation):
        access_reviews.start_access_review(actor=people["dave"])
    client.force_login(people["ada"])
    assert _post(client, action="start").status_code == 302
    assert _post(client, action="start").status_code == 409  # one open review at a time


def test_an_overdue_review_shows_on_the_monitoring_page(client, people, settings):
    settings.PORTAL_ACCESS_REVIEW_DAYS = 30
    client.force_login(people["ada"])
    page = client.get(reverse("monitoring:index")).content.decode()
    assert "The access review is overdue" not in page  # a new installation is not overdue on day one
    PrivilegeChange.objects.update(created_at=timezone.now() - timedelta(days=45))
    page = client.get(reverse("monitoring:index")).content.decode()
    assert "The access review is overdue" in page
    review = access_reviews.start_access_review(actor=people["ada"])
    for item in AccessReviewItem.objects.filter(review=review):
        reviewer = people["otto"] if item.subject == people["ada"] else people["ada"]
        access_reviews.decide_review_item(actor=reviewer, item=item, decision="confirmed")
    access_reviews.sign_off_access_review(actor=people["otto"], review=review)
    page = client.get(reverse("monitoring:index")).content.decode()
    assert "The access review is overdue" not in page and "last signed off" in page


def test_the_access_review_report_says_an_untrained_approver_in_a_granted_group_cannot_act_now(environment):
    from django.contrib.auth.models import Group

    rota = Group.objects.create(name="release-rota")
    ursula = factories.UserFactory(username="ursula", roles=[Role.APPROVER], trained=False)
    ursula.groups.add(rota)
    assign_perm("deployments.approve_deployment", rota, environment)
    rows = [row for row in get_report("access-review").iter_rows(Filters())
            if row["section"] == "current" and row["person"] == "ursula"]
    assert rows and all(row["effective"] is False and row["detail"] for row in rows)
    assert "training" in get_report("access-review").description
