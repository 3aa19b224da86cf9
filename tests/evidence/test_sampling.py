"""Samples drawn at random with the seed kept, reproducible, downloaded as one signed bundle."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.evidence import services
from deployments.models import EvidenceSample, Refusal
from tests import factories

pytestmark = pytest.mark.django_db


def _draw(actor, **kwargs):
    today = timezone.localdate()
    kwargs.setdefault("size", 2)
    return services.draw_sample(actor=actor, date_from=today, date_to=today, **kwargs)


def test_the_same_seed_draws_the_same_sample_and_the_seed_is_kept(deployed, auditor, submit):
    changes = [deployed() for _ in range(5)]
    submit()  # an undecided request is not a change that went anywhere
    first = _draw(auditor, size=3)
    assert len(first.seed) == 32 and first.population_count == 5
    assert set(first.request_ids) <= {c.pk for c in changes} and len(first.request_ids) == 3
    again = _draw(auditor, size=3, seed=first.seed)
    assert again.request_ids == first.request_ids and again.population_sha256 == first.population_sha256
    assert services.pick([c.pk for c in changes], 3, first.seed) == first.request_ids


def test_filters_narrow_the_population(deployed, auditor):
    deployed()
    emergency = deployed(emergency=True)
    sample = _draw(auditor, size=10, emergency_only=True)
    assert sample.request_ids == [emergency.pk] and sample.population_count == 1
    assert _draw(auditor, size=5, service="no-such-service").request_ids == []


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"size": 0}, "invalid_size"),
    ({"size": 10_000}, "invalid_size"),
    ({"seed": " padded "}, "invalid_seed"),
])
def test_bad_samples_are_refused_and_recorded(auditor, kwargs, code):
    with pytest.raises(RuleViolation) as refused:
        _draw(auditor, **kwargs)
    assert refused.value.code == code
    assert not EvidenceSample.objects.exists()
    assert Refusal.objects.get().code == code


def test_only_auditors_and_administrators_draw_samples(client, environment):
    engineer = factories.engineer(environment)
    with pytest.raises(RuleViolation, match="auditors and administrators"):
        _draw(engineer)
    client.force_login(engineer)
    assert client.get("/evidence/samples/").status_code == 403
    today = timezone.localdate().isoformat()
    assert client.post("/evidence/samples/", {"date_from": today, "date_to": today, "size": 1}).status_code == 403
    assert client.get("/evidence/changes/").status_code == 403
    assert not EvidenceSample.objects.exists()


def test_the_bundle_holds_each_change_the_manifest_and_the_signed_checkpoint(client, deployed, auditor):
    changes = [deployed(ticket="PAY-3"), deployed()]
    client.force_login(auditor)
    today = timezone.localdate().isoformat()
    response = client.post("/evidence/samples/", {"date_from": today, "date_to": today, "size": 5})
    sample = EvidenceSample.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evidence/samples/{sample.pk}/"
    page = client.get(response["Location"])
    assert sample.seed.encode() in page.content
    download = client.get(f"/evidence/samples/{sample.pk}/bundle.zip")
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = set(archive.namelist())
    for change in changes:
        assert {f"changes/{change.pk}.json", f"changes/{change.pk}.pdf"} <= names
    assert {"manifest.json", "sample.json", "audit/checkpoints.jsonl", "verify_bundle.py"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["kind"] == "deployment-evidence-sample"
    assert manifest["sample"]["seed"] == sample.seed and manifest["audit_chain"]["checkpoint"] is not None
    hashed = {entry["name"] for entry in manifest["files"]}
    assert f"changes/{changes[0].pk}.pdf" in hashed
    story = json.loads(archive.read(f"changes/{changes[0].pk}.json"))
    assert story["change_record"]["ticket"] == "PAY-3"


def test_the_changes_page_answers_who_authorized_what_in_constant_queries(client, deployed, auditor):
    client.force_login(auditor)
    today = timezone.localdate().isoformat()
    url = f"/evidence/changes/?date_from={today}&date_to={today}"
    deployed()

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    few = count()
    for _ in range(4):
        deployed()
    page = client.get(url).content.decode()
    assert page.count("approver0 (") == 5
    assert count() == few
    assert client.get("/evidence/changes/?date_from=2026-02-02&date_to=2026-01-01").status_code == 400


def test_a_sample_and_its_bundle_must_refuse_everyone_but_auditors_and_administrators(client, deployed, auditor):
    deployed()
    sample = _draw(auditor)
    engineer = factories.engineer(factories.make_environment(name="other"))
    client.force_login(engineer)
    assert client.get(f"/evidence/samples/{sample.pk}/").status_code == 403
    assert client.get(f"/evidence/samples/{sample.pk}/bundle.zip").status_code == 403
    client.force_login(auditor)
    assert client.get(f"/evidence/samples/{sample.pk + 1}/").status_code == 404
    assert client.post(f"/evidence/samples/{sample.pk}/bundle.zip").status_code == 405
    client.logout()
    assert client.get(f"/evidence/samples/{sample.pk}/bundle.zip").status_code == 302
