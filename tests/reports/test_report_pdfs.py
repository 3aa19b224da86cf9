"""Every report's PDF shows every column — wrapped, or stacked one record per block when wide, never cut
off at the page's edge — and prints choices as their labels."""

from __future__ import annotations

import io
import re

import pypdf
import pytest

from compliance.reports import exporters, registry
from compliance.reports.registry import Filters
from tests.reports.test_reports import world  # noqa: F401 (the fixture: requests, decisions, executions)

pytestmark = pytest.mark.django_db


def pdf_text(slug: str) -> str:
    pdf = exporters.pdf_bytes(registry.get(slug), Filters(), generated_by="audrey")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "".join(page.extract_text() for page in reader.pages)


def text_beyond_the_page(slug: str) -> list[str]:
    """Pieces of text drawn to the right of the page's edge (clipped when printed or viewed)."""
    pdf = exporters.pdf_bytes(registry.get(slug), Filters(), generated_by="audrey")
    outside: list[str] = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        right = float(page.mediabox.right)

        def visit(text, cm, tm, font, size, right=right):
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            if text.strip() and x > right:
                outside.append(text.strip())

        page.extract_text(visitor_text=visit)
    return outside


def squeezed(text: str) -> str:
    """Text without any whitespace: a label wrapped over two lines still reads as itself."""
    return "".join(text.split())


@pytest.mark.parametrize("slug", [report.slug for report in registry.all_reports()])
def test_every_column_header_of_every_report_is_in_its_pdf(world, slug):  # noqa: F811
    report = registry.get(slug)
    text = squeezed(pdf_text(slug))
    missing = [column.label for column in report.columns if squeezed(column.label) not in text]
    assert missing == [], f"{slug}: columns missing from the PDF: {missing}"
    assert text_beyond_the_page(slug) == [], f"{slug}: text cut off at the page's right edge"


def test_the_authorization_logs_last_columns_and_their_values_are_printed(world):  # noqa: F811
    text = pdf_text("deployment-authorization-log")
    flat = squeezed(text)
    r1 = world["r1"]
    for label in ("Deployed sha", "Emergency", "During freeze", "Flagged for review", "Unauthorized execution"):
        assert squeezed(label) in flat
    assert r1.sha in flat  # the full sha, not clipped
    # Choices as their labels: "Succeeded", never the stored "success" cut to "succes".
    assert re.search(r"^Execution Succeeded$", text, re.MULTILINE), text
    assert re.search(r"^Source Portal \(web\)$", text, re.MULTILINE)
    assert re.search(r"^Decision / status Deployed$", text, re.MULTILINE)
