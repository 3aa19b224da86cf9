"""The compliance reports ``compliance`` owns: training compliance, violations and their handling,
audit-log review sign-offs. Registered from ``ComplianceConfig.ready()``.

- Training compliance: where every person holding a role stands on every course the role requires
  (now), then the evidence of the period: attestations given, suspensions started and lifted.
- Violations: every violation detected in the period, its deadline, owner, escalation, outcome and
  every step of its handling (who, when, from which status to which, with the notes).
- Audit-log reviews: the signed-off reviews whose period overlaps the report's, the days no review
  covers, and whether the next review is overdue.

Large tables stream (one query per section read with ``.iterator``); training standings are worked
out in Python by ``compliance.training.rules`` (the rule lives there), a batch of people at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, timedelta

from django.db.models import Case, F, Q, TextField, Value, When
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from ..audit.models import AuditReview
from ..audit.reviews import review_status
from ..people.models import Suspension
from ..people.roles import ROLE_NAMES
from ..training.models import Attestation
from ..training.selectors import people_in_scope, standings
from ..violations.models import Severity, Violation, ViolationKind, ViolationStatus
from .registry import PERIOD, Column, Filters, Report, register
from .sql import IsoTimestamp, string_agg

CHUNK_SIZE = 2000
PEOPLE_BATCH = 500
STEP_DELIMITER = " | "


def _iso(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


# --- training compliance --------------------------------------------------------------------------

TRAINING_COLUMNS = (
    Column("section", "Section"),
    Column("person", "Person"),
    Column("roles", "Roles"),
    Column("course", "Course"),
    Column("status", "Status"),
    Column("detail", "Detail"),
    Column("occurred_at", "When (UTC)"),
    Column("deadline", "Valid until / due (UTC)"),
    Column("policy_version", "Policy version"),
    Column("policy_sha256", "Policy SHA-256"),
    Column("quiz_score", "Quiz score"),
    Column("acting_allowed", "May act"),
    Column("suspended", "Suspended now"),
)


def _blank_training_row(section: str) -> dict:
    return {column.key: "" for column in TRAINING_COLUMNS} | {"section": section, "quiz_score": None,
                                                               "acting_allowed": None, "suspended": None}


def _standing_rows() -> Iterator[dict]:
    """Every person holding a role × every course their roles require, as the portal sees it now."""
    now = timezone.now()
    people = list(people_in_scope())
    suspended = set(Suspension.objects.filter(lifted_at__isnull=True).values_list("user_id", flat=True))
    for start in range(0, len(people), PEOPLE_BATCH):
        batch = people[start:start + PEOPLE_BATCH]
        by_person = standings(batch, now=now)
        for person in batch:
            roles = "; ".join(sorted(g.name for g in person.groups.all() if g.name in ROLE_NAMES))
            rows = by_person[person.pk]
            if not rows:
                yield _blank_training_row("standing") | {
                    "person": person.username, "roles": roles, "status": "no training required",
                    "acting_allowed": person.pk not in suspended, "suspended": person.pk in suspended,
                }
            for row in rows:
                attestation = row.attestation
                yield _blank_training_row("standing") | {
                    "person": person.username,
                    "roles": roles,
                    "course": row.course.title,
                    "status": row.standing.status,
                    "detail": row.standing.reason,
                    "occurred_at": _iso(attestation.attested_at) if attestation else "",
                    "deadline": _iso(row.standing.deadline),
                    "policy_version": attestation.policy_version if attestation else "",
                    "policy_sha256": attestation.policy_sha256 if attestation else "",
                    "quiz_score": attestation.quiz_score if attestation else None,
                    "acting_allowed": row.standing.allows_acting and person.pk not in suspended,
                    "suspended": person.pk in suspended,
                }


def _attestation_rows(filters: Filters) -> Iterator[dict]:
    rows = (
        filters.in_period(Attestation.objects.all(), "attested_at")
        .annotate(at=IsoTimestamp("attested_at"), until=IsoTimestamp("expires_at"))
        .order_by("attested_at", "id")
        .values_list("user__username", "course__title", "at", "until", "policy_version", "policy_sha256",
                     "quiz_score", "ip_address")
    )
    for person, course, at, until, version, sha256, score, ip in rows.iterator(chunk_size=CHUNK_SIZE):
        yield _blank_training_row("attestation") | {
            "person": person, "course": course, "status": "attested", "detail": f"from {ip}" if ip else "",
            "occurred_at": at, "deadline": until, "policy_version": version, "policy_sha256": sha256,
            "quiz_score": score,
        }


def _suspension_rows(filters: Filters) -> Iterator[dict]:
    """Suspensions started, and suspensions lifted, in the period (one row each)."""
    for field, section in (("started_at", "suspension started"), ("lifted_at", "suspension lifted")):
        queryset = filters.in_period(Suspension.objects.filter(**{f"{field}__isnull": False}), field)
        rows = (
            queryset.annotate(at=IsoTimestamp(field))
            .order_by(field, "id")
            .values_list("user__username", "at", "trigger", "scope", "reason", "lift_reason",
                         "created_by__username", "lifted_by__username", "lifted_at")
        )
        for person, at, trigger, scope, reason, lift_reason, created_by, lifted_by, lifted_at in rows.iterator(
            chunk_size=CHUNK_SIZE
        ):
            started = section == "suspension started"
            by = (created_by if started else lifted_by) or "the portal"
            yield _blank_training_row(section) | {
                "person": person,
                "status": f"{trigger}, scope {scope}",
                "detail": f"by {by}: {reason if started else lift_reason}",
                "occurred_at": at,
                "suspended": lifted_at is None,
            }


def training_rows(filters: Filters) -> Iterator[dict]:
    yield from _standing_rows()
    yield from _attestation_rows(filters)
    yield from _suspension_rows(filters)


TRAINING_COMPLIANCE = Report(
    slug="training-compliance",
    title="Training compliance",
    description=(
        "standing: every active person holding a role and each course the role requires, with their status "
        "now (current, expiring, due, overdue), the attestation that counts, the policy version and hash they "
        "attested, and whether they may act. attestation: every attestation given in the period. suspension "
        "started / lifted: the enforcement of the period (lapsed training, violations, administrators)."
    ),
    columns=TRAINING_COLUMNS,
    rows=training_rows,
    filters=frozenset({PERIOD}),
    order=50,
)


# --- violations and their handling ----------------------------------------------------------------

VIOLATION_COLUMNS = (
    Column("violation_id", "Violation"),
    Column("detected_at", "Detected at (UTC)"),
    Column("kind", "Kind", choices=tuple(ViolationKind.choices)),
    Column("severity", "Severity", choices=tuple(Severity.choices)),
    Column("title", "Title"),
    Column("subject", "Subject"),
    Column("source", "Detected by"),
    Column("status", "Status", choices=tuple(ViolationStatus.choices)),
    Column("owner", "Owner"),
    Column("ack_deadline", "Acknowledge by (UTC)"),
    Column("acknowledged_at", "Acknowledged at (UTC)"),
    Column("acknowledged_in_time", "Acknowledged in time"),
    Column("escalated_at", "Escalated at (UTC)"),
    Column("closed_at", "Closed at (UTC)"),
    Column("resolution_notes", "Resolution notes"),
    Column("handling", "Handling (when, who, what, notes)"),
)


def _handling_text():
    """Every ``ViolationEvent`` of the violation in order: ``<at> <who> <kind> <from>-><to>: <notes>``."""
    step = Concat(
        IsoTimestamp("events__created_at"),
        Value(" "),
        Coalesce("events__actor__username", Value("portal"), output_field=TextField()),
        Value(" "),
        "events__kind",
        Case(
            When(events__to_status="", then=Value("")),
            default=Concat(Value(" "), "events__from_status", Value("->"), "events__to_status"),
            output_field=TextField(),
        ),
        Case(
            When(events__notes="", then=Value("")),
            default=Concat(Value(": "), "events__notes"),
            output_field=TextField(),
        ),
        output_field=TextField(),
    )
    return string_agg(step, STEP_DELIMITER, order_by=("events__created_at", "events__id"),
                      filter=Q(events__id__isnull=False))


def violation_rows(filters: Filters) -> Iterator[dict]:
    keys = [column.key for column in VIOLATION_COLUMNS]
    rows = (
        filters.in_period(Violation.objects.all(), "detected_at")
        .annotate(
            detected=IsoTimestamp("detected_at"),
            deadline=IsoTimestamp("ack_deadline"),
            acknowledged=IsoTimestamp("acknowledged_at"),
            in_time=Case(
                When(acknowledged_at__isnull=True, then=Value(None)),
                When(acknowledged_at__lte=F("ack_deadline"), then=Value(True)),
                default=Value(False),
            ),
            escalated=IsoTimestamp("escalated_at"),
            closed=IsoTimestamp("closed_at"),
            handling=_handling_text(),
        )
        .order_by("detected_at", "id")
        .values_list(
            "pk", "detected", "kind", "severity", "title", "subject", "source", "status", "owner__username",
            "deadline", "acknowledged", "in_time", "escalated", "closed", "resolution_notes", "handling",
        )
    )
    for values in rows.iterator(chunk_size=CHUNK_SIZE):
        row = dict(zip(keys, values, strict=True))
        acknowledged_in_time = row["acknowledged_in_time"]
        row["acknowledged_in_time"] = None if acknowledged_in_time is None else bool(acknowledged_in_time)
        yield row


VIOLATIONS = Report(
    slug="violations",
    title="Violations and their handling",
    description=(
        "Every violation detected in the period: kind, severity, what it is about, how it was detected "
        "(event or reconciliation), its acknowledgement deadline and whether it was met, escalation, owner, "
        "outcome and notes, and every step of the investigation."
    ),
    columns=VIOLATION_COLUMNS,
    rows=violation_rows,
    filters=frozenset({PERIOD}),
    order=60,
)


# --- audit-log review sign-offs -------------------------------------------------------------------

REVIEW_COLUMNS = (
    Column("section", "Section"),
    Column("period_start", "Period from"),
    Column("period_end", "Period to"),
    Column("signed_off_by", "Signed off by"),
    Column("signed_off_at", "Signed off at (UTC)"),
    Column("scope", "Scope"),
    Column("findings", "Findings"),
)


def _covered_gaps(reviews: list[tuple[date, date]], first: date, last: date) -> list[tuple[date, date]]:
    """The day ranges between ``first`` and ``last`` (inclusive) that no review period covers."""
    gaps, cursor = [], first
    for start, end in sorted(reviews):
        if end < cursor:
            continue
        if start > cursor:
            gaps.append((cursor, min(start - timedelta(days=1), last)))
        cursor = max(cursor, end + timedelta(days=1))
        if cursor > last:
            break
    if cursor <= last:
        gaps.append((cursor, last))
    return [(a, b) for a, b in gaps if a <= b]


def audit_review_rows(filters: Filters) -> Iterator[dict]:
    today = timezone.localdate()
    reviews = AuditReview.objects.all()
    if filters.date_from:
        reviews = reviews.filter(period_end__gte=filters.date_from)
    if filters.date_to:
        reviews = reviews.filter(period_start__lte=filters.date_to)
    rows = (
        reviews.annotate(signed=IsoTimestamp("signed_off_at"))
        .order_by("period_start", "period_end", "id")
        .values_list("period_start", "period_end", "signed_off_by__username", "signed", "scope", "findings")
    )
    periods = []
    for start, end, by, signed, scope, findings in rows.iterator(chunk_size=CHUNK_SIZE):
        periods.append((start, end))
        yield {"section": "review", "period_start": start.isoformat(), "period_end": end.isoformat(),
               "signed_off_by": by, "signed_off_at": signed, "scope": scope, "findings": findings}
    # Days without a review: from the first reviewed day (or the filter's start) to the end of the period.
    first = filters.date_from or (min(start for start, _ in periods) if periods else None)
    last = min(filters.date_to or today, today)
    if first is not None:
        for start, end in _covered_gaps(periods, first, last):
            yield {"section": "not reviewed", "period_start": start.isoformat(), "period_end": end.isoformat(),
                   "signed_off_by": "", "signed_off_at": "", "scope": "",
                   "findings": f"No signed-off audit-log review covers these {(end - start).days + 1} day(s)."}
    status = review_status(today=today)
    if status.overdue:
        findings = (f"OVERDUE by {status.days_overdue} day(s): a review was due by {status.due_by.isoformat()} "
                    f"(every {status.interval_days} days).")
    else:
        findings = f"Next review due by {status.due_by.isoformat()} (every {status.interval_days} days)."
    yield {"section": "status", "period_start": "", "period_end": status.due_by.isoformat(), "signed_off_by": "",
           "signed_off_at": "", "scope": "", "findings": findings}


AUDIT_REVIEWS = Report(
    slug="audit-reviews",
    title="Audit-log review sign-offs",
    description=(
        "review: every signed-off audit-log review whose period overlaps the report's (period, who signed "
        "off and when, scope, findings). not reviewed: the days no review covers. status: when the next "
        "review is due and whether it is overdue."
    ),
    columns=REVIEW_COLUMNS,
    rows=audit_review_rows,
    filters=frozenset({PERIOD}),
    order=70,
)


for _report in (TRAINING_COMPLIANCE, VIOLATIONS, AUDIT_REVIEWS):
    register(_report)
