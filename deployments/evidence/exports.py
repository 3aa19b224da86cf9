"""A change's story as files (JSON, PDF), and an evidence sample as one signed bundle (ZIP).

The sample bundle is the reports' evidence bundle (``compliance.reports.exporters.write_bundle``):
one JSON and one PDF per sampled change under ``changes/``, ``sample.json`` (the seed, the filters,
the population fingerprint), the audit-chain segment of the period with its signed checkpoint and
the offline verifier, and ``manifest.json`` hashing every file, signed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

from django.core.serializers.json import DjangoJSONEncoder
from django.template.loader import render_to_string
from django.utils import timezone

from compliance.reports import exporters
from compliance.reports.registry import BundlePart, Filters
from deployments.evidence.story import change_story
from deployments.models import DeploymentRequest, EvidenceSample

SAMPLE_BUNDLE_KIND = "deployment-evidence-sample"


def story_json(story: dict) -> bytes:
    return json.dumps(story, indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder).encode()


def story_pdf(story: dict, *, generated_by: str) -> bytes:
    html = render_to_string("evidence/story_pdf.html", {"story": story, "generated_by": generated_by,
                                                         "generated_at": timezone.now()})
    return exporters.html_to_pdf(html)


def sample_manifest(sample: EvidenceSample) -> dict:
    return {
        "id": sample.pk, "drawn_by": sample.drawn_by.username, "drawn_at": sample.drawn_at.isoformat(),
        "period": {"from": sample.date_from.isoformat(), "to": sample.date_to.isoformat()},
        "service": sample.service, "environment": sample.environment, "emergency_only": sample.emergency_only,
        "size": sample.size, "seed": sample.seed, "population_count": sample.population_count,
        "population_sha256": sample.population_sha256, "request_ids": sample.request_ids,
        "reproduce": "random.Random(seed).sample(population ids in ascending order, size), sorted",
    }


def _change_files(sample: EvidenceSample, generated_by: str) -> Iterator[tuple[str, Iterator[bytes]]]:
    requests = DeploymentRequest.objects.filter(pk__in=sample.request_ids).order_by("pk")
    for request in requests:
        story = change_story(request)
        yield f"changes/{request.pk}.json", iter([story_json(story)])
        yield f"changes/{request.pk}.pdf", iter([story_pdf(story, generated_by=generated_by)])


def write_sample_bundle(target: IO[bytes], *, sample: EvidenceSample, generated_by: str) -> dict:
    """Write the sample's bundle to ``target``; returns its manifest."""
    manifest = sample_manifest(sample)
    files = [("sample.json", iter([story_json(manifest)])), *_change_files(sample, generated_by)]
    part = BundlePart(key="sample", manifest=manifest, files=files)
    filters = Filters(date_from=sample.date_from, date_to=sample.date_to, service=sample.service,
                      environment=sample.environment)
    return exporters.write_bundle(target, filters=filters, generated_by=generated_by, reports=[],
                                  extra_parts=[part], kind=SAMPLE_BUNDLE_KIND)
