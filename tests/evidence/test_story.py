"""One change, its whole story: page, JSON, PDF and API, with the permission rules of the request page."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from compliance.audit.services import seal_and_checkpoint
from compliance.reports.models import ReportExport
from deployments.api import tokens
from deployments.evidence.story import change_story
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_story_holds_the_request_decisions_execution_and_chain_links(deployed, settings):
    request = deployed(ticket="PAY-1", impact="Only the checkout.", rollback_plan="Redeploy the last tag.",
                       title="Fix rounding", ip_address="127.0.0.1")
    seal_and_checkpoint(force_checkpoint=True)
    story = change_story(request)
    assert story["request"]["requester"] == "rita" and story["request"]["source"] == "web"
    assert story["request"]["ip_address"] == "127.0.0.1"
    assert story["change_record"]["ticket"] == "PAY-1"
    assert story["change_record"]["rollback_plan"] == "Redeploy the last tag."
    assert [d["approver"] for d in story["decisions"]] == ["approver0"]
    assert story["decisions"][0]["comment"] == "Looks right."
    assert story["policy"]["sha256"] == story["decisions"][0]["policy_sha256"]
    execution = story["executions"][0]
    assert execution["sha_matches"] and execution["authorized"] and execution["status"] == "success"
    chain = story["audit_chain"]
    labels = {link["model"] for link in chain["links"]}
    assert {"deployments.approval", "deployments.requestevent"} <= labels
    assert chain["not_yet_sealed"] == [] and chain["checkpoint_covers_links"]


def test_a_deployed_sha_that_differs_is_shown_as_such(environment, requester, approvers):
    from deployments.gate import services

    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    factories.approve(request, approvers[0])
    services.report_execution(actor=requester, environment=environment, sha=factories.sha(), status="success",
                              request=request)
    execution = change_story(request)["executions"][0]
    assert not execution["sha_matches"] and not execution["authorized"]


def test_auditors_read_the_page_and_its_exports_and_each_is_recorded(client, deployed, auditor):
    request = deployed(ticket="PAY-2")
    client.force_login(auditor)
    page = client.get(f"/requests/{request.pk}/story/")
    assert page.status_code == 200
    assert b'id="story-chain"' in page.content and b"PAY-2" in page.content
    data = client.get(f"/requests/{request.pk}/story.json")
    assert data["Content-Disposition"] == f'attachment; filename="change-{request.pk}.json"'
    assert json.loads(data.content)["request"]["id"] == request.pk
    pdf = client.get(f"/requests/{request.pk}/story.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert list(ReportExport.objects.filter(report="change-story").values_list("format", flat=True).order_by("id")) == [
        "html", "json", "pdf"]


def test_the_story_must_refuse_outsiders_anonymous_people_and_unknown_formats(client, deployed, requester, auditor):
    request = deployed()
    assert client.get(f"/requests/{request.pk}/story/").status_code == 302  # to sign in
    client.force_login(requester)  # sees the request page, not the auditors' story
    assert client.get(f"/requests/{request.pk}/").status_code == 200
    assert client.get(f"/requests/{request.pk}/story/").status_code == 403
    assert client.get(f"/requests/{request.pk}/story.json").status_code == 403
    client.force_login(auditor)
    assert client.get(f"/requests/{request.pk}/story.xml").status_code == 404
    outsider = factories.engineer(factories.make_environment(name="other"))
    client.force_login(outsider)
    assert client.get(f"/requests/{request.pk}/story/").status_code == 404
    assert client.get(f"/requests/{request.pk}/story.json").status_code == 404
    client.force_login(factories.UserFactory(roles=[]))
    assert client.get(f"/requests/{request.pk}/story.pdf").status_code == 404
    assert client.post(f"/requests/{request.pk}/story/").status_code == 405


def test_the_api_serves_the_story_within_the_tokens_scope(deployed, auditor):
    request = deployed()
    _, clear = tokens.create_api_token(actor=auditor, user=auditor, name="audit", actions=["read"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {clear}")
    response = api.get(f"/api/v1/requests/{request.pk}/story/")
    assert response.status_code == 200 and response.json()["format"] == "deployment-change-story/1"
    other = factories.make_environment(name="elsewhere")
    _, narrow = tokens.create_api_token(actor=auditor, user=auditor, name="narrow", environments=[other])
    refused = Client(HTTP_AUTHORIZATION=f"Bearer {narrow}").get(f"/api/v1/requests/{request.pk}/story/")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert Client().get(f"/api/v1/requests/{request.pk}/story/").status_code in (401, 403)
    requester = request.requester
    _, own = tokens.create_api_token(actor=requester, user=requester, name="own")
    mine = Client(HTTP_AUTHORIZATION=f"Bearer {own}").get(f"/api/v1/requests/{request.pk}/story/")
    assert mine.status_code == 403 and mine.json()["error"]["code"] == "not_permitted"
