"""Reads about violations: the lists and the detail the monitoring pages show, and the steps a
violation may take next."""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404

from .models import Violation, ViolationEvent, ViolationStatus
from .services import ALLOWED_TRANSITIONS


def violation_list(*, status: str = "", limit: int = 200) -> list[Violation]:
    """The newest violations (only those in ``status`` when it is a known status)."""
    violations = Violation.objects.select_related("owner").order_by("-detected_at", "-id")
    if status in ViolationStatus.values:
        violations = violations.filter(status=status)
    return list(violations[:limit])


def violation_detail(*, pk: int) -> Violation:
    """One violation with its owner and every step of its handling (404 when unknown)."""
    return get_object_or_404(
        Violation.objects.select_related("owner").prefetch_related(
            Prefetch("events", queryset=ViolationEvent.objects.select_related("actor"))
        ),
        pk=pk,
    )


def next_statuses(violation: Violation) -> list[tuple[str, str]]:
    """(value, label) of the statuses ``violation`` may move to."""
    allowed = ALLOWED_TRANSITIONS.get(violation.status, set())
    return [(value, label) for value, label in ViolationStatus.choices if value in allowed]
