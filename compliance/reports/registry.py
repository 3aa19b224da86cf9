"""The report registry: what a report is, the filters it takes, and the hooks other parts register.

A report is a title, a description, its columns and a ``rows(filters)`` generator of dicts keyed by
column. ``rows`` must stream: one SQL query (or a few, never one per row) read with
``.iterator(chunk_size=...)`` and ``values()``/``values_list()``, so exporting a million rows keeps
memory flat. Apps register their reports from ``AppConfig.ready()``::

    from compliance.reports.registry import Column, Report, register

    register(Report(slug="training-compliance", title="Training compliance", description="...",
                    columns=(Column("user", "Person"), ...), rows=training_rows))

The audit-chain head written into evidence-bundle manifests comes from a provider registered with
``register_chain_head_provider``; until one is registered it is ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

PERIOD = "period"
SERVICE = "service"
ENVIRONMENT = "environment"
ALL_FILTERS = frozenset({PERIOD, SERVICE, ENVIRONMENT})


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # (value, label) pairs of a choice-valued column: readable formats (PDF) print the label, machine
    # formats (CSV, JSON, XLSX) keep the value.
    choices: tuple[tuple[str, str], ...] = ()

    def display(self, value: Any) -> Any:
        """``value`` as a person reads it: a choice's label when the column has choices."""
        if self.choices and isinstance(value, str):
            return dict(self.choices).get(value, value)
        return value


@dataclass(frozen=True)
class Filters:
    """What a report is limited to. ``date_from`` and ``date_to`` are inclusive calendar days (UTC)."""

    date_from: date | None = None
    date_to: date | None = None
    service: str = ""
    environment: str = ""

    @property
    def start(self) -> datetime | None:
        """The first instant of the period (inclusive), or None for "since the beginning"."""
        if self.date_from is None:
            return None
        return datetime.combine(self.date_from, time.min, tzinfo=timezone.get_current_timezone())

    @property
    def end(self) -> datetime | None:
        """The first instant after the period (exclusive), or None for "until now"."""
        if self.date_to is None:
            return None
        return datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone())

    def in_period(self, queryset, field: str = "created_at"):
        """``queryset`` limited to rows whose ``field`` lies in the period (start inclusive, end exclusive)."""
        if self.start:
            queryset = queryset.filter(**{f"{field}__gte": self.start})
        if self.end:
            queryset = queryset.filter(**{f"{field}__lt": self.end})
        return queryset

    def as_dict(self) -> dict[str, str]:
        return {
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "service": self.service,
            "environment": self.environment,
        }

    def describe(self) -> str:
        parts = []
        if self.date_from or self.date_to:
            parts.append(f"period {self.date_from or 'beginning'} to {self.date_to or 'now'}")
        if self.service:
            parts.append(f"service {self.service}")
        if self.environment:
            parts.append(f"environment {self.environment}")
        return ", ".join(parts) or "everything"


RowSource = Callable[[Filters], Iterable[dict[str, Any]]]


@dataclass(frozen=True)
class Report:
    """One auditor report. ``rows(filters)`` yields one dict per row, keyed by the columns' keys."""

    slug: str
    title: str
    description: str
    columns: tuple[Column, ...]
    rows: RowSource
    filters: frozenset[str] = field(default=ALL_FILTERS)
    order: int = 100

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(column.key for column in self.columns)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(column.label for column in self.columns)

    def iter_rows(self, filters: Filters) -> Iterator[dict[str, Any]]:
        """The rows for ``filters``, ignoring filters this report does not support."""
        if SERVICE not in self.filters and filters.service:
            filters = Filters(filters.date_from, filters.date_to, "", filters.environment)
        if ENVIRONMENT not in self.filters and filters.environment:
            filters = Filters(filters.date_from, filters.date_to, filters.service, "")
        if PERIOD not in self.filters and (filters.date_from or filters.date_to):
            filters = Filters(None, None, filters.service, filters.environment)
        yield from self.rows(filters)


_reports: dict[str, Report] = {}


def register(report: Report) -> Report:
    """Add ``report``; registering the same slug twice with a different report is a mistake."""
    if not report.slug or not report.slug.replace("-", "").replace("_", "").isalnum():
        raise ImproperlyConfigured(f"Report slug {report.slug!r} must be letters, digits, - and _.")
    if report.slug == "bundle":
        raise ImproperlyConfigured("The report slug 'bundle' is reserved for the evidence bundle.")
    existing = _reports.get(report.slug)
    if existing is not None and existing != report:
        raise ImproperlyConfigured(f"A report with slug {report.slug!r} is already registered.")
    _reports[report.slug] = report
    return report


def unregister(slug: str) -> None:
    """Remove a report (tests that register throw-away reports use this)."""
    _reports.pop(slug, None)


def get(slug: str) -> Report | None:
    return _reports.get(slug)


def all_reports() -> list[Report]:
    return sorted(_reports.values(), key=lambda report: (report.order, report.title))


# --- the audit-chain head for evidence bundles --------------------------------------------------

ChainHeadProvider = Callable[[], Any]
_chain_head_providers: list[ChainHeadProvider] = []


def register_chain_head_provider(provider: ChainHeadProvider) -> ChainHeadProvider:
    """Register ``provider() -> dict | str | None``: the current head of the tamper-evident audit chain
    (e.g. ``{"entry_id": 123, "hash": "ab12..."}``). The last one registered is used."""
    if provider not in _chain_head_providers:
        _chain_head_providers.append(provider)
    return provider


def unregister_chain_head_provider(provider: ChainHeadProvider) -> None:
    if provider in _chain_head_providers:
        _chain_head_providers.remove(provider)


def audit_chain_head() -> Any:
    """The audit-chain head to write into a bundle manifest, or None while no chain exists."""
    if not _chain_head_providers:
        return None
    return _chain_head_providers[-1]()


# --- what else the evidence bundle carries ------------------------------------------------------


@dataclass
class BundlePart:
    """Files another package adds to the evidence bundle (``(name, chunks)``; hashed into the manifest
    like the reports) and a section of the manifest under ``key``."""

    key: str
    manifest: dict
    files: Iterable[tuple[str, Iterable[bytes]]] = ()


BundlePartProvider = Callable[[Filters], BundlePart]
ManifestSigner = Callable[[bytes], tuple[str, bytes]]
_bundle_parts: list[BundlePartProvider] = []
_manifest_signers: list[ManifestSigner] = []


def register_bundle_part(provider: BundlePartProvider) -> BundlePartProvider:
    if provider not in _bundle_parts:
        _bundle_parts.append(provider)
    return provider


def bundle_parts(filters: Filters) -> list[BundlePart]:
    return [provider(filters) for provider in _bundle_parts]


def register_manifest_signer(signer: ManifestSigner) -> ManifestSigner:
    """``signer(manifest bytes) -> (file name, signature bytes)``, written next to the manifest."""
    if signer not in _manifest_signers:
        _manifest_signers.append(signer)
    return signer


def manifest_signatures(manifest: bytes) -> list[tuple[str, bytes]]:
    return [signer(manifest) for signer in _manifest_signers]
