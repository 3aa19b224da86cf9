"""The administrator monitoring page is a list of panels that apps register.

A panel names a template and a function ``context(*, user, now) -> dict`` that runs a fixed number
of queries (the page asserts a constant query count). ``requires_models`` hides a panel until the
models it reads exist, so integrations built later (decision deliveries, GitHub branch audits,
training) add their panels without touching this page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.db.models import Count, Q
from django.utils import timezone

from ..audit import checkpoints
from ..audit.keys import public_key_fingerprint, public_key_pem, using_development_keys
from ..audit.models import ChainLink, ForgedEntry
from ..audit.reviews import review_status
from ..people.models import PrivilegeChange, PrivilegeChangeKind
from ..people.privileges import WATCHED_ROLES
from ..people.roles import Role, has_role, oversees_everything
from ..training.selectors import training_overview
from ..violations.models import Violation, ViolationKind, ViolationStatus
from .jobs import jobs_panel_context


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    template: str
    context: Callable[..., dict]
    order: int = 100
    requires_models: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        for label in self.requires_models:
            try:
                apps.get_model(label)
            except LookupError:
                return False
        return True


_panels: dict[str, Panel] = {}


def register_panel(panel: Panel) -> Panel:
    """Add (or replace, by key) a panel on the monitoring page."""
    _panels[panel.key] = panel
    return panel


def unregister_panel(key: str) -> None:
    _panels.pop(key, None)


def panels() -> list[Panel]:
    return sorted((p for p in _panels.values() if p.available), key=lambda p: (p.order, p.key))


def can_monitor(user) -> bool:
    """Administrators and auditors read the monitoring page (superusers too)."""
    return oversees_everything(user)


def can_handle_violations(user) -> bool:
    return has_role(user, Role.ADMINISTRATOR)


def rendered_panels(*, user, now: datetime | None = None) -> list[dict]:
    now = now or timezone.now()
    return [
        {"key": p.key, "title": p.title, "template": p.template, **p.context(user=user, now=now)} for p in panels()
    ]


# --- the panels compliance owns -----------------------------------------------------------------

def open_violations_context(*, user, now: datetime) -> dict:
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    is_open = ~Q(status__in=(ViolationStatus.RESOLVED, ViolationStatus.RISK_ACCEPTED))
    counts = Violation.objects.filter(is_open).aggregate(
        total=Count("pk"),
        under_1_day=Count("pk", filter=Q(detected_at__gt=day_ago)),
        one_to_7_days=Count("pk", filter=Q(detected_at__lte=day_ago, detected_at__gt=week_ago)),
        over_7_days=Count("pk", filter=Q(detected_at__lte=week_ago)),
        unacknowledged_overdue=Count("pk", filter=Q(status=ViolationStatus.OPEN, ack_deadline__lte=now)),
    )
    oldest = list(Violation.objects.filter(is_open).select_related("owner").order_by("detected_at", "id")[:25])
    for violation in oldest:
        violation.age = now - violation.detected_at
        violation.ack_overdue = violation.status == ViolationStatus.OPEN and violation.ack_deadline <= now
    return {"counts": counts, "violations": oldest}


def branch_drift_context(*, user, now: datetime) -> dict:
    drift = list(
        Violation.objects.filter(kind=ViolationKind.BRANCH_PROTECTION_DRIFT)
        .exclude(status__in=(ViolationStatus.RESOLVED, ViolationStatus.RISK_ACCEPTED))
        .order_by("-detected_at", "-id")[:25]
    )
    return {"violations": drift}


FORGED_SHOWN = 10


def audit_trail_context(*, user, now: datetime) -> dict:
    head = ChainLink.objects.order_by("-seq").first()
    forged = list(ForgedEntry.objects.order_by("-detected_at", "-id")[:FORGED_SHOWN])
    return {
        "review": review_status(today=timezone.localdate(now)),
        "chain_head": head,
        "checkpoint": checkpoints.latest(),
        "public_key_pem": public_key_pem(),
        "fingerprint": public_key_fingerprint(),
        "development_keys": using_development_keys(),
        "forged": forged,
        # Counted only when there are more than the panel lists (one query in the normal case).
        "forged_count": len(forged) if len(forged) < FORGED_SHOWN else ForgedEntry.objects.count(),
    }


PRIVILEGE_PANEL_DAYS = 30


def privilege_changes_context(*, user, now: datetime) -> dict:
    since = now - timedelta(days=PRIVILEGE_PANEL_DAYS)
    changes = list(PrivilegeChange.objects.filter(created_at__gte=since).select_related("actor", "subject")[:50])
    return {
        "changes": changes,
        "refused": sum(change.kind == PrivilegeChangeKind.REFUSED for change in changes),
        "days": PRIVILEGE_PANEL_DAYS,
        "roles": WATCHED_ROLES,
    }


def access_control_context(*, user, now: datetime) -> dict:
    """Pending four-eyes access changes, time-bound grants ending soon, and whether the periodic
    access review is overdue (four queries)."""
    from ..people.access_models import AccessChange, AccessChangeStatus
    from ..people.access_reviews import access_review_status

    soon = now + timedelta(days=7)
    counts = AccessChange.objects.aggregate(
        pending=Count("pk", filter=Q(status=AccessChangeStatus.PENDING)),
        expiring=Count("pk", filter=Q(status=AccessChangeStatus.APPROVED, expires_at__lte=soon)),
    )
    return {"counts": counts, "review": access_review_status(today=timezone.localdate(now))}


register_panel(Panel("open-violations", "Open violations by age", "monitoring/panels/violations.html",
                     open_violations_context, order=30))
register_panel(Panel("branch-drift", "Branch protection drift", "monitoring/panels/drift.html",
                     branch_drift_context, order=60))
register_panel(Panel("training", "Training compliance per role", "monitoring/panels/training.html",
                     training_overview, order=50))
register_panel(Panel("audit-trail", "Audit-log reviews and audit chain", "monitoring/panels/audit_trail.html",
                     audit_trail_context, order=80))
register_panel(Panel("privileged-access", "Privileged-access changes", "monitoring/panels/privileges.html",
                     privilege_changes_context, order=55))
register_panel(Panel("access-control", "Access changes and access reviews", "monitoring/panels/access.html",
                     access_control_context, order=56))
register_panel(Panel("periodic-jobs", "Periodic jobs", "monitoring/panels/jobs.html", jobs_panel_context, order=85))
