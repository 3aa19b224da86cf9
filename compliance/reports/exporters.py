"""Turn a report's rows into files: CSV and JSON streamed, XLSX and PDF via a temporary file, and the
evidence bundle (a ZIP of every report plus a manifest of SHA-256 hashes).

Nothing here holds a whole report in memory: rows are consumed as the report's generator yields
them and written out in chunks.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import islice
from typing import IO, Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.template.loader import render_to_string
from django.utils import timezone

from . import registry
from .registry import Filters, Report

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = frozenset(("=", "+", "-", "@", "\t", "\r"))
CHUNK_BYTES = 64 * 1024
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, minus the header row


# More columns than this are printed stacked (one block per row) rather than as a table.
PDF_TABLE_MAX_COLUMNS = 10


def pdf_row_limit() -> int:
    return settings.PORTAL_REPORT_PDF_MAX_ROWS


def cell_text(value: Any) -> str:
    """A value as the text an export shows: booleans as yes/no, times in ISO 8601, lists joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = value.astimezone(timezone.get_current_timezone())
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "; ".join(cell_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, cls=DjangoJSONEncoder)
    return str(value)


def neutralise(text: str) -> str:
    """Prefix a single quote to text a spreadsheet would run as a formula (OWASP CSV injection)."""
    if text and text[0] in FORMULA_PREFIXES:
        return "'" + text
    return text


def _cells(row: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """``neutralise(cell_text(value))`` for each column, inlined: this runs once per cell of every export."""
    cells = []
    for key in keys:
        value = row.get(key)
        text = value if value.__class__ is str else cell_text(value)
        if text and text[0] in FORMULA_PREFIXES:
            text = "'" + text
        cells.append(text)
    return cells


class _Line:
    """A write-only file for ``csv.writer`` that returns what was written."""

    def write(self, value: str) -> str:
        return value


# --- CSV ------------------------------------------------------------------------------------------


def csv_chunks(report: Report, filters: Filters) -> Iterator[str]:
    """The report as CSV text in chunks of about 64 KB: a header row of labels, then every row."""
    writer = csv.writer(_Line())
    keys = report.keys
    buffer = [writer.writerow(report.labels)]
    size = 0
    for row in report.iter_rows(filters):
        line = writer.writerow(_cells(row, keys))
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def csv_bytes(report: Report, filters: Filters) -> Iterator[bytes]:
    """UTF-8 with a byte-order mark, so spreadsheets open accented names correctly."""
    yield "\ufeff".encode()
    for chunk in csv_chunks(report, filters):
        yield chunk.encode("utf-8")


# --- JSON -----------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return cell_text(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def json_chunks(report: Report, filters: Filters) -> Iterator[str]:
    """The report as one JSON array of row objects (keys are the column keys), streamed."""
    encoder = json.JSONEncoder(ensure_ascii=False, default=str)
    keys = report.keys
    buffer = ["["]
    size = 0
    first = True
    for row in report.iter_rows(filters):
        text = encoder.encode({key: _json_value(row.get(key)) for key in keys})
        buffer.append(text if first else ",\n" + text)
        first = False
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(buffer)
            buffer, size = [], 0
    buffer.append("]\n")
    yield "".join(buffer)


def json_bytes(report: Report, filters: Filters) -> Iterator[bytes]:
    for chunk in json_chunks(report, filters):
        yield chunk.encode("utf-8")


# --- XLSX -----------------------------------------------------------------------------------------


XLSX_MAX_WIDTH = 60  # characters: longer cells wrap in a column this wide rather than a screen-wide one


# Reports format their timestamps in the database as ISO 8601 UTC text (``sql.IsoTimestamp``).
ISO_UTC_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")


def _xlsx_time(value: datetime) -> datetime:
    """A datetime as Excel holds it: in UTC, as the column labels say, without tzinfo (Excel has none)."""
    if timezone.is_aware(value):
        value = timezone.make_naive(value, UTC)
    return value


def write_xlsx(report: Report, filters: Filters, path: str, *, generated_by: str = "") -> int:
    """Write the report to an .xlsx file at ``path`` in constant memory; returns the row count.

    Strings are written as strings (never formulas or links), so a cell starting with ``=`` is
    shown, not evaluated. Times and dates are real Excel dates (sortable, filterable); the header
    row has an autofilter, columns are as wide as their content (capped) and the "About" sheet says
    who generated the file and when.
    """
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "tmpdir": tempfile.gettempdir(),
        },
    )
    try:
        sheet = workbook.add_worksheet("".join(ch for ch in report.title if ch not in "[]:*?/\\")[:31] or "Report")
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        day = workbook.add_format({"num_format": "yyyy-mm-dd"})
        sheet.write_row(0, 0, report.labels, bold)
        sheet.freeze_panes(1, 0)
        keys = report.keys
        widths = [len(str(label)) for label in report.labels]
        count = 0
        truncated = False
        for row in report.iter_rows(filters):
            if count >= XLSX_MAX_ROWS:
                truncated = True
                break
            count += 1
            for col, key in enumerate(keys):
                value = row.get(key)
                if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
                    sheet.write_number(count, col, value)
                    width = len(str(value))
                elif isinstance(value, datetime):
                    sheet.write_datetime(count, col, _xlsx_time(value), when)
                    width = 19
                elif isinstance(value, date):
                    sheet.write_datetime(count, col, value, day)
                    width = 10
                elif isinstance(value, str) and ISO_UTC_TIMESTAMP.fullmatch(value):
                    sheet.write_datetime(count, col, _xlsx_time(datetime.fromisoformat(value)), when)
                    width = 19
                else:
                    text = cell_text(value)
                    sheet.write_string(count, col, text)
                    width = max((len(line) for line in text.splitlines()), default=0)
                widths[col] = max(widths[col], width)
        for col, width in enumerate(widths):
            sheet.set_column(col, col, min(width, XLSX_MAX_WIDTH) + 2)
        if keys:
            sheet.autofilter(0, 0, count, len(keys) - 1)
        notes = workbook.add_worksheet("About")
        notes.write_string(0, 0, f"{report.title} — {filters.describe()}")
        generated = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S %Z")
        notes.write_string(1, 0, f"Generated by {generated_by or 'the portal'} at {generated}; {count} rows.")
        if truncated:
            notes.write_string(2, 0, "Truncated at Excel's row limit: use the CSV or JSON export for every row.")
        notes.set_column(0, 0, XLSX_MAX_WIDTH + 20)
    finally:
        workbook.close()
    return count


# --- PDF ------------------------------------------------------------------------------------------


def refuse_external_urls(url: str, *args, **kwargs):
    """WeasyPrint URL fetcher: only inline ``data:`` URLs; a report never reaches out to the network."""
    if url.startswith("data:"):
        from weasyprint import default_url_fetcher

        return default_url_fetcher(url, *args, **kwargs)
    raise ValueError(f"External resources are disabled in report PDFs (refused {url[:100]!r}).")


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html, base_url=None, url_fetcher=refuse_external_urls).write_pdf()


def pdf_bytes(report: Report, filters: Filters, *, generated_by: str = "") -> bytes:
    """The first ``PORTAL_REPORT_PDF_MAX_ROWS`` rows as a landscape PDF, with a note when there are more."""
    limit = pdf_row_limit()
    fetched = list(islice(report.iter_rows(filters), limit + 1))
    truncated = len(fetched) > limit
    columns = report.columns
    rows = [[cell_text(column.display(row.get(column.key))) for column in columns] for row in fetched[:limit]]
    # Wide reports are printed one record per block (label: value), so no column is ever cut off;
    # narrower ones as a table whose cells wrap, long shas included.
    stacked = len(columns) > PDF_TABLE_MAX_COLUMNS
    html = render_to_string(
        "reports/report_pdf.html",
        {
            "report": report,
            "filters": filters,
            "rows": rows,
            "records": [list(zip(report.labels, row, strict=True)) for row in rows] if stacked else [],
            "stacked": stacked,
            "row_limit": limit,
            "truncated": truncated,
            "generated_at": timezone.now(),
            "generated_by": generated_by,
        },
    )
    return html_to_pdf(html)


# --- the evidence bundle --------------------------------------------------------------------------


class _HashingWriter:
    """Writes through to a ZIP member while hashing and counting the bytes."""

    def __init__(self, target: IO[bytes]):
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.sha256.update(chunk)
            self.size += len(chunk)
            self.target.write(chunk)


def write_bundle(
    target: IO[bytes], *, filters: Filters, generated_by: str, reports: list[Report] | None = None,
    extra_parts: Iterable[registry.BundlePart] = (), kind: str = "deployment-authorization-evidence-bundle",
) -> dict:
    """Write a ZIP of every report (CSV and JSON), the files other packages add (the audit chain's
    segment, checkpoints and offline verifier), ``manifest.json`` and its signatures; return the manifest.

    The manifest lists each file with its SHA-256 and size, the filters, the generation time, who
    generated it, the head of the tamper-evident audit chain and each added part's section.
    ``extra_parts`` are written like the registered parts (an evidence sample's per-change files).
    """
    reports = registry.all_reports() if reports is None else reports
    files = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:

        def add(name: str, chunks: Iterable[bytes], **about) -> None:
            with archive.open(name, "w", force_zip64=True) as member:
                writer = _HashingWriter(member)
                writer.write_all(chunks)
            files.append({"name": name, **about, "bytes": writer.size, "sha256": writer.sha256.hexdigest()})

        for report in reports:
            for extension, producer in (("csv", csv_bytes), ("json", json_bytes)):
                add(f"{report.slug}.{extension}", producer(report, filters), report=report.slug, title=report.title,
                    format=extension)
        sections = {}
        for part in [*extra_parts, *registry.bundle_parts(filters)]:
            for name, chunks in part.files:
                add(name, chunks, part=part.key)
            sections[part.key] = part.manifest
        manifest = {
            "kind": kind,
            "generated_at": timezone.now().isoformat(),
            "generated_by": generated_by,
            "filters": filters.as_dict(),
            "audit_chain_head": registry.audit_chain_head(),
            **sections,
            "files": files,
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, cls=DjangoJSONEncoder).encode()
        archive.writestr("manifest.json", manifest_bytes)
        for name, signature in registry.manifest_signatures(manifest_bytes):
            archive.writestr(name, signature)
    return manifest


def temporary_path(suffix: str) -> str:
    handle, path = tempfile.mkstemp(prefix="portal-report-", suffix=suffix)
    os.close(handle)
    return path


def open_and_unlink(path: str) -> IO[bytes]:
    """Open a finished temporary file for reading and remove its name; the data lives until closed."""
    handle = open(path, "rb")  # noqa: SIM115  (closed by the FileResponse that streams it)
    os.unlink(path)
    return handle
