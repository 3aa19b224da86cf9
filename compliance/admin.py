from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from . import admin_jobs, admin_signin, privileges, services, training  # noqa: F401  (periodic jobs, privilege changes; sign-in records)
from .admin_base import ReadOnlyAdmin, ReadOnlyAdminMixin
from .choices import SuspensionTrigger
from .errors import RuleViolation
from .models import (
    Attestation,
    CourseRole,
    PolicyDocument,
    QuizAttempt,
    QuizQuestion,
    RoleAssignment,
    Suspension,
    TrainingCourse,
    TrainingReminder,
    User,
)

admin.site.site_header = "Deployment authorization portal"
admin.site.site_title = "Deployment authorization"
admin.site.index_title = "Administration"


class PortalUserChangeForm(UserChangeForm):
    """The user form refuses privilege changes the signed-in person may not make (see
    ``compliance.privileges``): the refusal is recorded and shown on the form; nothing is saved."""

    actor = None  # set per request by ``UserAdmin.get_form``

    def clean(self):
        data = super().clean()
        if self.actor is None or self.instance.pk is None:
            return data
        groups_before = set(self.instance.groups.values_list("name", flat=True))
        groups = data.get("groups")
        groups_after = {g.name for g in groups} if groups is not None else groups_before
        changed = set(self.changed_data)
        if "groups" in changed and groups_before == groups_after:
            changed.discard("groups")
        try:
            privileges.check_account_change(
                actor=self.actor, subject=self.instance, changed=changed,
                groups_before=groups_before, groups_after=groups_after,
            )
        except RuleViolation as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        return data


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = PortalUserChangeForm
    list_display = [
        "username",
        "email",
        "first_name",
        "last_name",
        "is_active",
        "is_service_account",
        "github_login",
        "is_staff",
    ]
    list_filter = ["is_active", "is_service_account", "is_staff", "groups"]
    search_fields = ["username", "email", "first_name", "last_name", "github_login", "gitlab_username"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("CI identities", {"fields": ["github_login", "gitlab_username", "is_service_account"]}),
    )
    actions = ["send_training_reminders", "deactivate"]

    def has_delete_permission(self, request, obj=None):
        # People are deactivated, never deleted: their approvals, requests and audit entries name
        # them, and the audit trail is append-only (deleting would rewrite its actor columns).
        return False

    def has_change_permission(self, request, obj=None):
        # A superuser's account (password included) is changed by superusers only: otherwise an
        # administrator could take it over.
        # (Read from the database: a refused form has already copied the submitted flags onto ``obj``.)
        if obj is not None and not request.user.is_superuser and (
            type(obj).objects.filter(pk=obj.pk, is_superuser=True).exists()
        ):
            return False
        return super().has_change_permission(request, obj)

    def user_change_password(self, request, id, form_url=""):
        subject = self.get_object(request, unquote(id))
        if subject is not None and request.method == "POST":
            try:
                privileges.check_password_set(actor=request.user, subject=subject)
            except RuleViolation as refusal:
                raise PermissionDenied(refusal.message) from None
        elif subject is not None and not request.user.is_superuser and subject.pk != request.user.pk:
            raise PermissionDenied("Only a superuser sets another person's password.")
        return super().user_change_password(request, id, form_url)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            return form
        return type(form.__name__, (form,), {"actor": request.user})

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.pk == request.user.pk:
            # Shown, but refused on save: say so before someone tries.
            fieldsets = (
                *fieldsets,
                ("Your own account", {"fields": [], "description": "You cannot change your own roles, staff or "
                                      "superuser status or permissions; another administrator has to."}),
            )
        return fieldsets

    def save_model(self, request, obj, form, change):
        flags = {name: (form.initial.get(name), form.cleaned_data.get(name))
                 for name in ("is_staff", "is_superuser") if change and name in form.changed_data}
        super().save_model(request, obj, form, change)
        if flags:
            privileges.flags_changed(actor=request.user, subject=obj, changes=flags)

    @admin.action(description="Deactivate the selected people (they can no longer sign in or act)",
                  permissions=["change"])
    def deactivate(self, request, queryset):
        count = 0
        if not request.user.is_superuser and queryset.filter(is_superuser=True).exists():
            self.message_user(request, "Only a superuser deactivates a superuser.", messages.WARNING)
            queryset = queryset.exclude(is_superuser=True)
        for person in queryset.filter(is_active=True).exclude(pk=request.user.pk):
            person.is_active = False
            person.save(update_fields=["is_active"])  # saved one by one so django-auditlog records each
            count += 1
        if queryset.filter(pk=request.user.pk).exists():
            self.message_user(request, "You cannot deactivate yourself.", messages.WARNING)
        self.message_user(request, f"{count} person(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Send training reminders to the selected people", permissions=["change"])
    def send_training_reminders(self, request, queryset):
        try:
            sent = services.send_training_reminders(actor=request.user, users=queryset)
        except RuleViolation as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"Training reminders sent to {sent} of {queryset.count()} selected people.")


class SuspensionForm(forms.ModelForm):
    class Meta:
        model = Suspension
        fields = ["user", "scope", "trigger", "reason"]

    def clean(self):
        data = super().clean()
        user, trigger = data.get("user"), data.get("trigger")
        if (
            self.instance.pk is None
            and trigger == SuspensionTrigger.TRAINING_LAPSED
            and Suspension.objects.filter(user=user, trigger=trigger, lifted_at__isnull=True).exists()
        ):
            raise forms.ValidationError(f"{user} is already suspended for lapsed training.")
        return data


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    form = SuspensionForm
    list_display = ["user", "scope", "trigger", "started_at", "lifted_at", "reason"]
    list_filter = ["scope", "trigger", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "reason", "lift_reason"]
    list_select_related = ["user"]
    fields = [
        "user",
        "scope",
        "trigger",
        "reason",
        "started_at",
        "created_by",
        "lifted_at",
        "lifted_by",
        "lift_reason",
        "details",
    ]
    readonly_fields = ["started_at", "created_by", "lifted_at", "lifted_by", "details"]
    autocomplete_fields = ["user"]
    actions = ["lift"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # an existing suspension is evidence; only lifting changes it
            return [*self.fields]
        return [*self.readonly_fields, "lift_reason"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = services.suspend_user(
            actor=request.user, user=obj.user, reason=obj.reason, trigger=obj.trigger, scope=obj.scope
        )
        obj.pk = created.pk
        obj.started_at = created.started_at

    def has_delete_permission(self, request, obj=None):
        return False

    def has_lift_permission(self, request):
        return privileges.is_administrator(request.user)

    @admin.action(description="Lift the selected suspensions (reason: lifted by an administrator)",
                  permissions=["lift"])
    def lift(self, request, queryset):
        for suspension in queryset.filter(lifted_at__isnull=True):
            try:
                services.lift_suspension(
                    actor=request.user, suspension=suspension, reason=f"Lifted by {request.user.username} in the admin."
                )
            except RuleViolation as exc:
                self.message_user(request, exc.message, messages.ERROR)


class ImmutableLogEntryAdmin(ReadOnlyAdminMixin, LogEntryAdmin):
    """Audit entries are browsable, never editable or deletable, by anyone."""


admin.site.unregister(LogEntry)
admin.site.register(LogEntry, ImmutableLogEntryAdmin)


class PortalGroupAdmin(DjangoGroupAdmin):
    """Groups: the four role groups get their permissions from code (``compliance.roles``), so only
    superusers change them; nobody changes (or deletes) a group they belong to."""

    def _may_change(self, request, obj) -> bool:
        if obj is None:
            return True
        if request.user.groups.filter(pk=obj.pk).exists():
            return False
        return request.user.is_superuser or obj.name not in privileges.ROLE_GROUP_NAMES

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_change(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.name in privileges.ROLE_GROUP_NAMES:
            return False  # the roles of the written policy
        return super().has_delete_permission(request, obj) and self._may_change(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("delete_selected", None)  # bulk delete checks no object: role groups are in the list
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request.user

        def clean(self):
            # Model permissions on a group are privileges outside the four roles: superusers only.
            data = form.clean(self)
            if "permissions" in self.changed_data:
                try:
                    privileges.check_group_permissions_change(actor=actor, group=self.instance)
                except RuleViolation as exc:
                    raise forms.ValidationError(exc.message, code=exc.code) from exc
            return data

        return type(form.__name__, (form,), {"clean": clean})

    def save_model(self, request, obj, form, change):
        if change:
            privileges.check_group_change(actor=request.user, group=obj)
        super().save_model(request, obj, form, change)


admin.site.unregister(Group)
admin.site.register(Group, PortalGroupAdmin)


# --- policy documents and training ------------------------------------------------------------------


class EvidenceAdmin(ReadOnlyAdmin):
    """Training evidence: viewable, never added, changed or deleted here."""


class PolicyDocumentForm(forms.ModelForm):
    class Meta:
        model = PolicyDocument
        fields = ["title", "version", "effective_at", "body"]

    def clean_version(self):
        version = self.cleaned_data["version"]
        try:
            major, minor = training.parse_version(version)
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
        obj.pk = created.pk

    def get_changeform_initial_data(self, request):
        from django.utils import timezone

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

from . import admin_audit  # noqa: E402, F401  (audit trail, violations, audit reviews)
from .models import ReportExport  # noqa: E402


@admin.register(ReportExport)
class ReportExportAdmin(ReadOnlyAdmin):
    """Who exported which report: evidence, read-only for everyone."""

    list_display = ["created_at", "user", "report", "format", "channel", "filters", "ip_address"]
    list_filter = ["format", "channel", "report"]
    search_fields = ["user__username", "report"]
    list_select_related = ["user"]
