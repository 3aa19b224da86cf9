"""Policy documents and training in the admin: published versions and evidence never change."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from ..audit.admin_base import ReadOnlyAdmin
from . import rules, services
from .models import (
    Attestation,
    CourseRole,
    PolicyDocument,
    QuizAttempt,
    QuizQuestion,
    RoleAssignment,
    TrainingCourse,
    TrainingReminder,
)


class EvidenceAdmin(ReadOnlyAdmin):
    """Training evidence: viewable, never added, changed or deleted here."""


class PolicyDocumentForm(forms.ModelForm):
    class Meta:
        model = PolicyDocument
        fields = ["title", "version", "effective_at", "body"]

    def clean_version(self):
        version = self.cleaned_data["version"]
        try:
            major, minor = rules.parse_version(version)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        latest = PolicyDocument.objects.order_by("-major", "-minor").first()
        if latest is not None and (major, minor) <= (latest.major, latest.minor):
            raise forms.ValidationError(f"Version {version} is not newer than the published version {latest.version}.")
        return f"{major}.{minor}"

    def _post_clean(self):  # major/minor/sha256 are set by the service, not validated on the instance
        pass


@admin.register(PolicyDocument)
class PolicyDocumentAdmin(admin.ModelAdmin):
    """New versions are published through the service; a published version never changes."""

    form = PolicyDocumentForm
    list_display = ["title", "version", "effective_at", "published_at", "published_by", "sha256"]
    fields = ["title", "version", "effective_at", "body", "sha256", "published_at", "published_by"]
    readonly_fields = ["sha256", "published_at", "published_by"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.fields] if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        created = services.publish_policy(
            actor=request.user,
            title=data["title"],
            version=data["version"],
            body=data["body"],
            effective_at=data["effective_at"],
        )
        for field in PolicyDocument._meta.concrete_fields:  # the admin's "was added" message names it
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False

    def get_changeform_initial_data(self, request):
        latest = PolicyDocument.objects.order_by("-major", "-minor").first()
        initial = {"effective_at": timezone.now()}
        if latest is not None:
            initial.update(title=latest.title, body=latest.body, version=f"{latest.major}.{latest.minor + 1}")
        return initial


class CourseRoleInline(admin.TabularInline):
    model = CourseRole
    extra = 0
    min_num = 1


class QuizQuestionInline(admin.StackedInline):
    model = QuizQuestion
    extra = 0


@admin.register(TrainingCourse)
class TrainingCourseAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "validity_days", "due_days", "pass_mark", "is_active"]
    list_filter = ["is_active", "course_roles__role"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [CourseRoleInline, QuizQuestionInline]

    def has_delete_permission(self, request, obj=None):
        return False  # attestations refer to courses; deactivate instead


@admin.register(Attestation)
class AttestationAdmin(EvidenceAdmin):
    list_display = ["user", "course", "policy_version", "quiz_score", "attested_at", "expires_at", "ip_address"]
    list_filter = ["course", "policy_version"]
    search_fields = ["user__username", "course__title"]
    list_select_related = ["user", "course"]
    date_hierarchy = "attested_at"


@admin.register(QuizAttempt)
class QuizAttemptAdmin(EvidenceAdmin):
    list_display = ["user", "course", "score", "passed", "attempted_at"]
    list_filter = ["passed", "course"]
    search_fields = ["user__username"]
    list_select_related = ["user", "course"]


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(EvidenceAdmin):
    list_display = ["user", "role", "assigned_at", "ended_at"]
    list_filter = ["role", ("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username"]
    list_select_related = ["user"]


@admin.register(TrainingReminder)
class TrainingReminderAdmin(EvidenceAdmin):
    list_display = ["user", "course", "kind", "period", "sent_at", "sent_by"]
    list_filter = ["kind", "course"]
    search_fields = ["user__username"]
    list_select_related = ["user", "course", "sent_by"]
