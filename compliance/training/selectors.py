"""Reads about training compliance, in bulk (a fixed number of queries however many people)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.links import absolute_url

from ..choices import TrainingStatus
from ..people.models import Suspension
from ..people.roles import ROLE_NAMES, Role, oversees_everything
from . import rules
from .models import Attestation, CourseRole, PolicyDocument, RoleAssignment, TrainingCourse

MATRIX_FILTERS = {
    "overdue": "Overdue",
    "due_soon": "Due within 30 days",
    "suspended": "Suspended",
}
DUE_SOON = timedelta(days=30)


def _days(name: str) -> timedelta:
    return timedelta(days=getattr(settings, name))


def warn_before() -> timedelta:
    return _days("PORTAL_TRAINING_REMIND_DAYS_BEFORE")


def training_url() -> str:
    return absolute_url("compliance:my_training")


# --- the policy in force ---------------------------------------------------------------------------


def current_policy(*, now: datetime | None = None) -> PolicyDocument | None:
    """The highest version already in effect."""
    now = now or timezone.now()
    return PolicyDocument.objects.filter(effective_at__lte=now).order_by("-major", "-minor").first()


def policy_facts(*, now: datetime | None = None) -> rules.PolicyFacts | None:
    """The policy in force at ``now`` and when each major version took effect (one query)."""
    now = now or timezone.now()
    in_effect = list(
        PolicyDocument.objects.filter(effective_at__lte=now)
        .order_by("-major", "-minor")
        .values_list("version", "major", "effective_at")
    )
    if not in_effect:
        return None
    starts: dict[int, datetime] = {}
    for _, major, effective_at in in_effect:
        starts[major] = min(effective_at, starts.get(major, effective_at))
    return rules.PolicyFacts(
        version=in_effect[0][0],
        major=in_effect[0][1],
        major_starts=tuple(sorted(starts.items())),
        grace=_days("PORTAL_POLICY_GRACE_DAYS"),
    )


def policy_versions() -> list[PolicyDocument]:
    return list(PolicyDocument.objects.select_related("published_by"))


# --- standings -----------------------------------------------------------------------------------


@dataclass
class CourseRow:
    """One required course for one person: the course, where they stand, their latest attestation."""

    course: TrainingCourse
    roles: list[str]
    standing: rules.CourseStanding
    attestation: Attestation | None

    @property
    def status(self) -> str:
        return self.standing.status


def courses_by_role() -> dict[str, list[TrainingCourse]]:
    """Active courses required for each role (two queries)."""
    result: dict[str, list[TrainingCourse]] = defaultdict(list)
    links = CourseRole.objects.filter(course__is_active=True).select_related("course").order_by("course__title")
    for link in links:
        result[link.role].append(link.course)
    return result


def _attestation_facts(att: Attestation) -> rules.AttestationFacts:
    return rules.AttestationFacts(att.attested_at, att.expires_at, att.policy_major, att.policy_version)


def standings(users, *, now: datetime | None = None, only_role: str | None = None) -> dict[int, list[CourseRow]]:
    """For each user, the courses their roles require and where they stand (about six queries).

    With ``only_role`` the roles the person holds are ignored and that role's courses are checked
    (the gate asks "may this person act as an approver?").
    """
    now = now or timezone.now()
    users = list(users)
    ids = [u.pk for u in users]
    by_role = courses_by_role()
    policy = policy_facts(now=now)
    if only_role is not None:
        roles_of = {pk: {str(only_role)} for pk in ids}
    else:
        roles_of = defaultdict(set)
        through = get_user_model().groups.through
        for user_id, name in through.objects.filter(user_id__in=ids, group__name__in=ROLE_NAMES).values_list(
            "user_id", "group__name"
        ):
            roles_of[user_id].add(name)
    assigned: dict[tuple[int, str], datetime] = {}
    for a in RoleAssignment.objects.filter(user_id__in=ids, ended_at__isnull=True):
        assigned[(a.user_id, a.role)] = a.assigned_at
    course_ids = {c.pk for courses in by_role.values() for c in courses}
    latest: dict[tuple[int, int], Attestation] = {}
    attestations = Attestation.objects.filter(user_id__in=ids, course_id__in=course_ids).order_by("-attested_at", "-pk")
    for att in attestations:
        latest.setdefault((att.user_id, att.course_id), att)
    result: dict[int, list[CourseRow]] = {}
    for user in users:
        needed: dict[int, tuple[TrainingCourse, list[str]]] = {}
        for role in sorted(roles_of.get(user.pk, ())):
            for course in by_role.get(role, ()):
                needed.setdefault(course.pk, (course, []))[1].append(role)
        rows = []
        for course, roles in sorted(needed.values(), key=lambda item: item[0].title):
            starts = [assigned[(user.pk, r)] for r in roles if (user.pk, r) in assigned]
            assigned_at = min(starts) if starts else user.date_joined
            att = latest.get((user.pk, course.pk))
            standing = rules.standing(
                now=now,
                assigned_at=assigned_at,
                due_days=course.due_days,
                latest=_attestation_facts(att) if att else None,
                policy=policy,
                warn_before=warn_before(),
                covers_policy=course.covers_policy,
            )
            rows.append(CourseRow(course, roles, standing, att))
        result[user.pk] = rows
    return result


def missing_training(*, user, role: str, now: datetime | None = None) -> list[CourseRow]:
    """The courses of ``role`` for which ``user`` has no attestation that counts right now."""
    rows = standings([user], now=now, only_role=role)[user.pk]
    return [row for row in rows if not row.standing.allows_acting]


def my_training(*, user, now: datetime | None = None) -> dict:
    rows = standings([user], now=now)[user.pk]
    groups = {"overdue": [], "due": [], "done": []}
    for row in rows:
        if row.status == TrainingStatus.OVERDUE:
            groups["overdue"].append(row)
        elif row.status == TrainingStatus.DUE:
            groups["due"].append(row)
        else:
            groups["done"].append(row)
    history = Attestation.objects.filter(user=user).select_related("course").order_by("-attested_at")[:50]
    return {**groups, "rows": rows, "history": history, "suspension": active_suspensions_of(user).first()}


def active_suspensions_of(user):
    return Suspension.objects.filter(user=user, lifted_at__isnull=True).order_by("-started_at")


def training_banner(*, user) -> dict:
    """What the page banner tells a signed-in person (two cheap queries, plus standings if roles)."""
    suspension = active_suspensions_of(user).first()
    rows = standings([user])[user.pk] if not user.is_service_account else []
    return {
        "suspension": suspension,
        "overdue": [r for r in rows if r.status == TrainingStatus.OVERDUE],
        "due": [r for r in rows if r.status == TrainingStatus.DUE],
    }


def training_course(*, slug: str) -> TrainingCourse:
    queryset = TrainingCourse.objects.filter(is_active=True).prefetch_related("questions", "course_roles")
    return get_object_or_404(queryset, slug=slug)


# --- administrators' tracking ----------------------------------------------------------------------


@dataclass
class MatrixLine:
    user: object
    roles: list[str]
    rows: list[CourseRow]
    suspension: Suspension | None
    cells: list | None = None  # one CourseRow (or None: not required) per matrix column

    @property
    def compliant(self) -> bool:
        return all(row.standing.allows_acting for row in self.rows)

    def cell(self, course) -> CourseRow | None:
        return next((row for row in self.rows if row.course.pk == course.pk), None)


def people_in_scope():
    """Every active person who holds a role (service accounts are not trained)."""
    return (
        get_user_model()
        .objects.filter(is_active=True, is_service_account=False, groups__name__in=ROLE_NAMES)
        .distinct()
        .prefetch_related(Prefetch("groups"))
        .order_by("username")
    )


def _matrix_lines(now: datetime) -> list[MatrixLine]:
    people = list(people_in_scope())
    rows = standings(people, now=now)
    suspensions = {}
    for s in Suspension.objects.filter(user__in=people, lifted_at__isnull=True).order_by("started_at"):
        suspensions[s.user_id] = s
    lines = []
    for person in people:
        roles = sorted(g.name for g in person.groups.all() if g.name in ROLE_NAMES)
        lines.append(MatrixLine(person, roles, rows[person.pk], suspensions.get(person.pk)))
    return lines


def _matches(line: MatrixLine, status_filter: str | None, now: datetime) -> bool:
    if status_filter == "overdue":
        return any(r.status == TrainingStatus.OVERDUE for r in line.rows)
    if status_filter == "due_soon":
        return any(r.status != TrainingStatus.OVERDUE and r.standing.deadline - now <= DUE_SOON for r in line.rows)
    if status_filter == "suspended":
        return line.suspension is not None
    return True


def training_matrix(*, user, status_filter: str | None = None, now: datetime | None = None) -> dict:
    """People × required courses with status and dates; administrators and auditors only."""
    if not oversees_everything(user):
        raise PermissionDenied("Only administrators and auditors see the compliance matrix.")
    now = now or timezone.now()
    if status_filter not in MATRIX_FILTERS:
        status_filter = None
    lines = [line for line in _matrix_lines(now) if _matches(line, status_filter, now)]
    course_ids = {}
    for line in lines:
        for row in line.rows:
            course_ids.setdefault(row.course.pk, row.course)
    courses = sorted(course_ids.values(), key=lambda c: c.title)
    for line in lines:
        line.cells = [line.cell(course) for course in courses]
    return {"lines": lines, "courses": courses, "filter": status_filter, "now": now}


def _role_totals(lines: list[MatrixLine]) -> list[dict]:
    totals = {str(r): [0, 0] for r in Role}
    for line in lines:
        for role in line.roles:
            totals[role][0] += 1
            if line.compliant and line.suspension is None:
                totals[role][1] += 1
    return [
        {"role": role, "people": people, "compliant": ok, "percent": round(100 * ok / people) if people else None}
        for role, (people, ok) in totals.items()
    ]


def role_compliance(*, user, now: datetime | None = None) -> list[dict]:
    """Per role: how many people hold it and the percentage whose required training is current."""
    if not oversees_everything(user):
        raise PermissionDenied("Only administrators and auditors see compliance figures.")
    return _role_totals(_matrix_lines(now or timezone.now()))


def training_overview(*, user, now: datetime | None = None, limit: int = 15) -> dict:
    """Per-role compliance and the people who may not act (lapsed training or suspended), for the
    monitoring page: a fixed number of queries whatever the number of people."""
    if not oversees_everything(user):
        raise PermissionDenied("Only administrators and auditors see compliance figures.")
    now = now or timezone.now()
    lines = _matrix_lines(now)
    blocked = [line for line in lines if not line.compliant or line.suspension is not None]
    for line in blocked:
        line.lapsed = [row for row in line.rows if not row.standing.allows_acting]
    return {"roles": _role_totals(lines), "blocked": blocked[:limit], "blocked_count": len(blocked)}
