"""Smaller defects a newcomer saw: a verdict's reasons repeated as one more bullet, "approval(s)", and
the access review calling an untrained person able to act."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.reports import registry
from compliance.reports.registry import Filters
from deployments.gate import services
from deployments.models import FreezeWindow
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_emergency_verdict_lists_each_reason_once(client, requester, environment):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=environment,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="Black Friday",
    )
    request = services.submit_request(
        actor=requester,
        environment=environment,
        sha=factories.sha(),
        ref="main",
        is_emergency=True,
        justification="Checkout fails for every customer now.",
    )
    client.force_login(requester)
    response = client.get(reverse("deployments:request_detail", args=[request.pk]))
    reasons = response.context["verdict"].reasons
    assert len(reasons) == 2 and response.context["extra_reason"] == ""
    section = response.content.decode().split('id="h-verdict"', 1)[1].split("</section>", 1)[0]
    assert section.count("<li>") == 2
    assert "1 extra approval required" in reasons[1] and "(s)" not in reasons[1]


def test_the_access_review_says_an_untrained_approver_cannot_act_now(environment):
    factories.approver(environment, username="ursula", trained=False)
    rows = [
        row
        for row in registry.get("access-review").iter_rows(Filters())
        if row["section"] == "current" and row["person"] == "ursula"
    ]
    assert rows and all(row["effective"] is False for row in rows)
    assert all(row["detail"] for row in rows)
