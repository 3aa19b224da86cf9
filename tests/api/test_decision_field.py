"""``decision`` in the API says how a request ended: "rejected" only when an approver rejected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.gate import services
from tests import factories
from tests.api.test_api import api

pytestmark = pytest.mark.django_db


def status_of(client, request) -> dict:
    return client.get(f"/api/v1/requests/{request.pk}/status/").json()


def test_a_superseded_request_reads_superseded_with_the_newer_request(requester, submit):
    older = submit()
    newer = submit()
    client = api(requester)
    data = status_of(client, older)
    assert (data["status"], data["decision"]) == ("superseded", "superseded")
    assert data["superseded_by"] == newer.pk
    assert data["superseded_by_url"].endswith(f"/requests/{newer.pk}/")
    assert client.get(f"/api/v1/requests/{older.pk}/").json()["decision"] == "superseded"


def test_cancelled_expired_and_rejected_each_read_as_themselves(requester, submit, approvers):
    client = api(requester)
    cancelled = submit()
    services.cancel_request(actor=requester, request=cancelled)
    assert status_of(client, cancelled)["decision"] == "cancelled"
    rejected = submit()
    services.reject_request(actor=approvers[0], request=rejected, comment="Not now.")
    assert status_of(client, rejected)["decision"] == "rejected"
    approved = submit()
    factories.approve(approved, approvers[0])
    data = status_of(client, approved)
    assert (data["decision"], data["superseded_by"], data["superseded_by_url"]) == ("approved", None, None)
    services.expire_due_requests(actor=None, now=timezone.now() + timedelta(days=2))
    assert status_of(client, approved)["decision"] == "expired"
