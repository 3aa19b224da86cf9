"""People in the admin: accounts (privilege changes refused and recorded), suspensions, role
groups, privilege changes and sign-in records."""

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe

from ..audit.admin_base import ReadOnlyAdmin, ReadOnlyAdminMixin
from ..choices import SuspensionTrigger
from ..errors import RuleViolation
from ..training import enforcement
from . import access_changes, privileges, suspensions
from .access_models import AccessChange, AccessReview, AccessReviewItem
from .models import PrivilegeChange, Suspension, User
from .roles import ROLE_NAMES, administers
from .sections import person_sections


class PortalUserChangeForm(UserChangeForm):
    """The user form refuses privilege changes the signed-in person may not make (see
    ``compliance.people.privileges``): the refusal is recorded and shown on the form; nothing is saved."""

    actor = None  # set per request by ``UserAdmin.get_form``

    # Granting a watched role, staff or superuser here becomes a pending access change (four eyes).
    access_expires_at = forms.DateTimeField(
        required=False, label="Access granted here expires at (UTC, optional)",
        help_text="New Administrators/Deployment Approvers roles and staff/superuser status wait for a second "
        "administrator; with a date they are revoked automatically then. Format: YYYY-MM-DD HH:MM.",
    )
    access_reason = forms.CharField(required=False, label="Why this access is needed", max_length=500)

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
    readonly_fields = ["effective_access"]

    @admin.display(description="Effective access")
    def effective_access(self, obj):
        # Each section renders through an auto-escaping template (see compliance.people.sections).
        return mark_safe("".join(  # noqa: S308
            f"<h3>{escape(title)}</h3>{body}" for title, body in person_sections(obj)
        )) or "—"

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
        if obj is not None:
            fieldsets = (
                *fieldsets,
                ("Four-eyes access change", {
                    "fields": ["access_expires_at", "access_reason"],
                    "description": "A new privileged role or flag is not granted on save: it becomes a pending "
                    "access change that a second administrator approves or rejects.",
                }),
                ("Effective access (read-only)", {"fields": ["effective_access"]}),
            )
        if obj is not None and obj.pk == request.user.pk:
            # Shown, but refused on save: say so before someone tries.
            fieldsets = (
                *fieldsets,
                ("Your own account", {"fields": [], "description": "You cannot change your own roles, staff or "
                                      "superuser status or permissions; another administrator has to."}),
            )
        return fieldsets

    def save_model(self, request, obj, form, change):
        request._pending_access_grants = []
        flags = {}
        if change:
            stored = type(obj).objects.filter(pk=obj.pk).values("is_staff", "is_superuser").first() or {}
            for name in ("is_staff", "is_superuser"):
                if getattr(obj, name) and not stored.get(name):
                    setattr(obj, name, False)  # granted only when a second administrator approves
                    request._pending_access_grants.append(access_changes.flag_grant(obj, name))
                elif stored.get(name) and not getattr(obj, name):
                    flags[name] = (True, False)
        super().save_model(request, obj, form, change)
        if flags:
            privileges.flags_changed(actor=request.user, subject=obj, changes=flags)

    def save_related(self, request, form, formsets, change):
        pending = getattr(request, "_pending_access_grants", [])
        if change and form.cleaned_data.get("groups") is not None:
            held = set(form.instance.groups.values_list("name", flat=True))
            wanted = list(form.cleaned_data["groups"])
            new_watched = [g for g in wanted if g.name in privileges.WATCHED_ROLES and g.name not in held]
            form.cleaned_data["groups"] = [g for g in wanted if g not in new_watched]
            pending += [access_changes.role_grant(form.instance, group.name) for group in new_watched]
        super().save_related(request, form, formsets, change)
        if not pending and form.cleaned_data.get("access_expires_at"):
            self.message_user(request, "The expiry was not used: nothing on this form needed a second administrator "
                              "(only new privileged roles and flags become time-bound access changes).",
                              messages.WARNING)
        for grant in pending:
            try:
                access_changes.request_access_change(
                    actor=request.user, grant=grant, reason=form.cleaned_data.get("access_reason", ""),
                    expires_at=form.cleaned_data.get("access_expires_at"), via="admin",
                )
            except RuleViolation as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"{grant.privilege} for {grant.grantee_label} is waiting for a second administrator "
                    "(Access changes).", messages.WARNING,
                )

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
            sent = enforcement.send_training_reminders(actor=request.user, users=queryset)
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
        created = suspensions.suspend_user(
            actor=request.user, user=obj.user, reason=obj.reason, trigger=obj.trigger, scope=obj.scope
        )
        obj.pk = created.pk
        obj.started_at = created.started_at

    def has_delete_permission(self, request, obj=None):
        return False

    def has_lift_permission(self, request):
        return administers(request.user)

    @admin.action(description="Lift the selected suspensions (reason: lifted by an administrator)",
                  permissions=["lift"])
    def lift(self, request, queryset):
        for suspension in queryset.filter(lifted_at__isnull=True):
            try:
                suspensions.lift_suspension(
                    actor=request.user, suspension=suspension, reason=f"Lifted by {request.user.username} in the admin."
                )
            except RuleViolation as exc:
                self.message_user(request, exc.message, messages.ERROR)


class PortalGroupAdmin(DjangoGroupAdmin):
    """Groups: the four role groups get their permissions from code (``compliance.people.roles``), so only
    superusers change them; nobody changes (or deletes) a group they belong to."""

    def _may_change(self, request, obj) -> bool:
        if obj is None:
            return True
        if request.user.groups.filter(pk=obj.pk).exists():
            return False
        return request.user.is_superuser or obj.name not in ROLE_NAMES

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_change(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.name in ROLE_NAMES:
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


@admin.register(PrivilegeChange)
class PrivilegeChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "privilege", "subject", "group", "target", "actor", "code"]
    list_filter = ["kind", "code"]
    search_fields = ["subject__username", "actor__username", "group", "privilege", "target"]
    list_select_related = ["subject", "actor"]
    date_hierarchy = "created_at"


# --- sign-in records (django-axes) ------------------------------------------------------------------
# Sign-in records in the admin (django-axes): evidence of who signed in, failed and was locked out.
#
# Access logs and failure logs are read-only for everyone, superusers included: nothing deletes them
# from the admin. Access attempts are the live lockout counters; they expire by themselves after the
# cool-off time. Nobody deletes them here either (that would lift a lockout without trace); a
# superuser may run *Clean up expired attempts*, which removes only counters whose cool-off is over —
# each failure stays in the failure log.


class PortalAccessAttemptAdmin(ReadOnlyAdminMixin, axes_admin.AccessAttemptAdmin):
    @admin.action(description="Clean up expired attempts (cool-off over)", permissions=["cleanup"])
    def cleanup_expired_attempts(self, request, queryset):
        return super().cleanup_expired_attempts(request, queryset)

    def has_cleanup_permission(self, request):
        return request.user.is_active and request.user.is_superuser


class PortalAccessLogAdmin(ReadOnlyAdminMixin, axes_admin.AccessLogAdmin):
    pass


class PortalAccessFailureLogAdmin(ReadOnlyAdminMixin, axes_admin.AccessFailureLogAdmin):
    pass


for _model, _admin in (
    (AccessAttempt, PortalAccessAttemptAdmin),
    (AccessLog, PortalAccessLogAdmin),
    (AccessFailureLog, PortalAccessFailureLogAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)


# --- four-eyes access changes and access reviews (decided on the portal's pages) ----------------------


@admin.register(AccessChange)
class AccessChangeAdmin(ReadOnlyAdmin):
    """Pending and decided access changes; administrators approve or reject them on the Access changes
    page (with a reason), never here."""

    list_display = ["requested_at", "status", "privilege", "subject", "grantee_group", "target", "requested_by",
                    "decided_by", "expires_at"]
    list_filter = ["status", "kind", "requested_via"]
    search_fields = ["subject__username", "requested_by__username", "decided_by__username", "privilege", "target"]
    list_select_related = ["subject", "grantee_group", "requested_by", "decided_by"]
    date_hierarchy = "requested_at"
    exclude = ["grant_key"]

    def changelist_view(self, request, extra_context=None):
        pending = AccessChange.objects.filter(status="pending").count()
        if pending:
            url = reverse("compliance:access_changes")
            self.message_user(request, mark_safe(  # noqa: S308 (a fixed URL and a count)
                f'{pending} access change(s) wait for a second administrator: <a href="{url}">decide them</a>.'),
                messages.WARNING)
        return super().changelist_view(request, extra_context)


class AccessReviewItemInline(admin.TabularInline):
    model = AccessReviewItem
    extra = 0
    can_delete = False
    fields = ["privilege", "subject", "grantee_group", "target", "decision", "decided_by", "decided_at", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AccessReview)
class AccessReviewAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "status", "started_by", "signed_off_at", "signed_off_by"]
    list_filter = ["status"]
    list_select_related = ["started_by", "signed_off_by"]
    inlines = [AccessReviewItemInline]
