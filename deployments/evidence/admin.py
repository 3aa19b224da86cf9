"""Emergency reviews, evidence samples and failed-change flags in the admin: evidence, read-only for everyone."""

from django.contrib import admin

from compliance.audit.admin_base import ReadOnlyAdmin
from deployments.models import EmergencyReview, EvidenceSample, FailedChangeFlag


@admin.register(EmergencyReview)
class EmergencyReviewAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "request", "reviewer", "outcome", "due_at"]
    list_filter = ["outcome"]
    search_fields = ["reviewer__username", "notes"]
    list_select_related = ["reviewer", "request__environment__service"]
    date_hierarchy = "created_at"


@admin.register(EvidenceSample)
class EvidenceSampleAdmin(ReadOnlyAdmin):
    list_display = ["drawn_at", "drawn_by", "date_from", "date_to", "service", "environment", "emergency_only",
                    "size", "population_count", "seed"]
    list_filter = ["emergency_only"]
    search_fields = ["drawn_by__username", "seed", "service", "environment"]
    list_select_related = ["drawn_by"]
    date_hierarchy = "drawn_at"


@admin.register(FailedChangeFlag)
class FailedChangeFlagAdmin(ReadOnlyAdmin):
    """Flags are recorded from the execution list's action (or the request page), never edited here."""

    list_display = ["created_at", "request", "execution", "flagged_by", "reason"]
    search_fields = ["flagged_by__username", "reason"]
    list_select_related = ["flagged_by", "request__environment__service", "execution__environment__service"]
    date_hierarchy = "created_at"
