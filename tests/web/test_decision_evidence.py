"""Each decision's evidence — its checklist answers, the policy acknowledgement (version and hash) and
its comment — is on the request page and in every format of the authorization log, and in the bundle."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import openpyxl
import pypdf
import pytest
from django.urls import reverse

from compliance.people.roles import Role
from deployments.gate import policy
from deployments.models import Approval
from tests import factories

pytestmark = pytest.mark.django_db

AUTH_LOG = "deployment-authorization-log"
HEADER = "Decision evidence (checklist, policy acknowledgement)"


@pytest.fixture
def decided(client, submit, approvers):
    """approver0 approves through the web form: every checklist item ticked, the policy acknowledged."""
    request = submit()
    items = request.policy_snapshot["impact_checklist"]
    client.force_login(approvers[0])
    url = reverse("deployments:decide", args=[request.pk])
    form = {"decision": "approve", "comment": "Rollback plan checked.", "acknowledge_policy": "1", "checklist": items}
    assert client.post(url, form).status_code == 302
    return request, Approval.objects.get(request=request)


def test_the_decision_keeps_the_acknowledged_policy_version_and_hash(decided):
    request, approval = decided
    assert approval.policy_acknowledged and approval.policy_version == 1
    assert approval.policy_sha256 == policy.snapshot_sha256(request.policy_snapshot)
    assert all(approval.checklist.values()) and len(approval.checklist) == 4


def test_the_request_page_shows_each_decisions_checklist_and_acknowledgement(client, decided):
    request, approval = decided
    text = client.get(reverse("deployments:request_detail", args=[request.pk])).content.decode()
    evidence = text.split(f'id="evidence-{approval.pk}"', 1)[1].split("</div>", 1)[0]
    assert "✓" in evidence and "Impact on production assessed" in evidence
    assert "Policy v1 acknowledged" in evidence and approval.policy_sha256[:16] in evidence
    assert "Rollback plan checked." in text


def test_every_export_of_the_authorization_log_carries_the_evidence(client, decided):
    request, approval = decided
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    expected = f"policy v1 acknowledged, sha256 {approval.policy_sha256}"

    def export(fmt):
        response = client.get(reverse("reports:export", args=[AUTH_LOG, fmt]))
        assert response.status_code == 200, fmt
        return b"".join(response.streaming_content) if response.streaming else response.content

    table = list(csv.DictReader(io.StringIO(export("csv").decode("utf-8-sig"))))
    assert expected in table[0][HEADER] and "Impact on production assessed" in table[0][HEADER]
    assert expected in json.loads(export("json"))[0]["decision_evidence"]
    sheet = openpyxl.load_workbook(io.BytesIO(export("xlsx"))).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    assert expected in sheet.cell(row=2, column=header.index(HEADER) + 1).value
    pdf_text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(export("pdf"))).pages)
    assert "acknowledged" in " ".join(pdf_text.split())
    response = client.get(reverse("reports:bundle"))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert expected in json.loads(archive.read(f"{AUTH_LOG}.json"))[0]["decision_evidence"]
