"""Administrators configure services, environments, policies, freezes and grants here; every kind of
evidence (requests, decisions, events, refusals, executions) is read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group, Permission
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import mark_safe
from guardian.admin import GuardedModelAdmin

from compliance.audit.admin_base import ReadOnlyAdmin
from compliance.errors import RuleViolation
from compliance.people import access_changes, privileges
from compliance.people.roles import administers
from deployments.gate import services
from deployments.models import (
    Approval,
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    Execution,
    FreezeWindow,
    Refusal,
    RequestEvent,
    Service,
)

# Grants of these wait for a second administrator (compliance.people.access_changes).
FOUR_EYES_CODENAMES = frozenset({"approve_deployment"})

GRANT_LABELS = {
    "request_deployment": "May request deployments (request_deployment)",
    "approve_deployment": "May approve deployments (approve_deployment)",
}


class EnvironmentInline(admin.TabularInline):
    model = Environment
    extra = 0
    fields = ["name", "tier", "is_protected"]
    show_change_link = True


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "display_name", "repository", "ci_provider", "created_at"]
    list_filter = ["ci_provider"]
    search_fields = ["name", "display_name", "repository"]
    inlines = [EnvironmentInline]


class ApprovalPolicyInline(admin.StackedInline):
    model = ApprovalPolicy
    can_delete = False
    readonly_fields = ["version", "updated_at"]


class FreezeWindowInline(admin.TabularInline):
    model = FreezeWindow
    extra = 0


@admin.register(Environment)
class EnvironmentAdmin(GuardedModelAdmin):
    list_display = ["__str__", "service", "tier", "is_protected", "required_approvals"]
    list_filter = ["tier", "is_protected", "service"]
    search_fields = ["name", "service__name", "service__repository"]
    list_select_related = ["service", "policy"]
    inlines = [ApprovalPolicyInline, FreezeWindowInline]
    readonly_fields = ["who_may_act"]

    @admin.display(description="Who may request and approve (read-only)")
    def who_may_act(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        from deployments.web.access import environment_access_html

        return mark_safe(environment_access_html(obj))  # noqa: S308 (an auto-escaping template)

    def _refuse_self_grant(self, request, object_pk, *, user=None, group=None):
        """Guardian's object-permission pages: nobody edits their own permissions or those of a
        group they belong to (the refusal is recorded; the page says why)."""
        if request.method != "POST":
            return None
        environment = self.get_object(request, object_pk)
        try:
            privileges.check_object_permission_grant(
                actor=request.user, permission="object permissions", target=str(environment), user=user, group=group
            )
        except RuleViolation as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return None

    def _four_eyes(self, request, object_pk, *, user=None, group=None) -> None:
        """Guardian's pages: a newly ticked approve permission is not saved but requested as an access
        change for a second administrator (the other ticks are saved as usual)."""
        if request.method != "POST":
            return
        environment = self.get_object(request, object_pk)
        selected = request.POST.getlist("permissions")
        kept = []
        for codename in selected:
            if codename not in FOUR_EYES_CODENAMES:
                kept.append(codename)
                continue
            grant = access_changes.permission_grant(
                permission=Permission.objects.get(content_type__app_label="deployments", codename=codename),
                target=environment, subject=user, group=group,
            )
            if access_changes.holds(grant):
                kept.append(codename)
                continue
            _request_grant(self, request, grant, reason="", expires_at=None)
        post = request.POST.copy()
        post.setlist("permissions", kept)
        request.POST = post

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        from django.contrib.auth import get_user_model

        person = get_user_model().objects.filter(pk=user_id).first()
        refused = self._refuse_self_grant(request, object_pk, user=person) if person else None
        if not refused and person is not None:
            self._four_eyes(request, object_pk, user=person)
        return refused or super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        group = Group.objects.filter(pk=group_id).first()
        refused = self._refuse_self_grant(request, object_pk, group=group) if group else None
        if not refused and group is not None:
            self._four_eyes(request, object_pk, group=group)
        return refused or super().obj_perms_manage_group_view(request, object_pk, group_id)

    @admin.display(description="Approvals required")
    def required_approvals(self, obj):
        return obj.policy.required_approvals if hasattr(obj, "policy") else "—"

    def save_formset(self, request, form, formset, change):
        if formset.model is ApprovalPolicy:
            # Policy edits go through the service so the version increases and the change is audited.
            for policy_form in formset.forms:
                if policy_form.instance.pk and policy_form.has_changed():
                    changes = {name: policy_form.cleaned_data[name] for name in policy_form.changed_data}
                    services.update_policy(actor=request.user, approval_policy=policy_form.instance, **changes)
                elif not policy_form.instance.pk and policy_form.has_changed():
                    policy_form.save()
            return
        super().save_formset(request, form, formset, change)


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    list_display = ["environment", "required_approvals", "exclude_change_authors", "request_ttl",
                    "approval_ttl", "version", "updated_at"]
    list_filter = ["exclude_change_authors", "environment__tier"]
    search_fields = ["environment__name", "environment__service__name"]
    list_select_related = ["environment__service"]
    readonly_fields = ["version", "updated_at"]

    def save_model(self, request, obj, form, change):
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            services.update_policy(actor=request.user, approval_policy=obj, **changes)
        else:
            super().save_model(request, obj, form, change)


@admin.register(FreezeWindow)
class FreezeWindowAdmin(admin.ModelAdmin):
    list_display = ["environment", "starts_at", "ends_at", "reason"]
    list_filter = ["environment__service"]
    search_fields = ["reason", "environment__name", "environment__service__name"]
    date_hierarchy = "starts_at"


def _request_grant(model_admin, request, grant, *, reason: str, expires_at) -> bool:
    try:
        access_changes.request_access_change(actor=request.user, grant=grant, reason=reason, expires_at=expires_at)
    except RuleViolation as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return False
    model_admin.message_user(
        request, f"{grant.privilege} on {grant.target_label} for {grant.grantee_label} is waiting for a second "
        "administrator (Access changes); nothing is granted until then.", messages.WARNING,
    )
    return True


class GrantForm(forms.ModelForm):
    expires_at = forms.DateTimeField(
        required=False, label="Expires at (UTC, optional)",
        help_text="A grant of approve_deployment waits for a second administrator; with a date it is revoked "
        "automatically then. Format: YYYY-MM-DD HH:MM.",
    )
    reason = forms.CharField(required=False, max_length=500, label="Why this access is needed")


@admin.register(EnvironmentUserObjectPermission)
class EnvironmentUserPermissionAdmin(admin.ModelAdmin):
    form = GrantForm
    list_display = ["environment", "user", "permission"]
    list_filter = ["permission__codename", "content_object__service"]
    search_fields = ["user__username", "content_object__name", "content_object__service__name"]
    list_select_related = ["content_object__service", "user", "permission"]
    autocomplete_fields = ["user"]
    grantee_field = "user"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # a grant is revoked (deleted) and granted anew, never edited into another one
            return ["content_object", self.grantee_field, "permission"]
        return []

    def get_fields(self, request, obj=None):
        if obj is not None:
            return ["content_object", self.grantee_field, "permission"]
        return ["content_object", self.grantee_field, "permission", "expires_at", "reason"]

    def save_model(self, request, obj, form, change):
        if not change and obj.permission.codename in FOUR_EYES_CODENAMES:
            grantee = getattr(obj, self.grantee_field)
            grant = access_changes.permission_grant(
                permission=obj.permission, target=obj.content_object,
                **({"subject": grantee} if self.grantee_field == "user" else {"group": grantee}),
            )
            request._access_change_requested = True
            _request_grant(self, request, grant, reason=form.cleaned_data.get("reason", ""),
                           expires_at=form.cleaned_data.get("expires_at"))
            return
        super().save_model(request, obj, form, change)

    def log_addition(self, request, obj, message):
        if getattr(request, "_access_change_requested", False):
            return None  # nothing was added: the access change is the record
        return super().log_addition(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_access_change_requested", False):
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        return super().response_add(request, obj, post_url_continue)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request.user

        def clean(self):
            # Nobody grants an environment permission to themselves or a group they are in; the
            # refusal is recorded and shown on the form.
            data = form.clean(self)
            permission, environment = data.get("permission"), data.get("content_object")
            if permission is not None and environment is not None:
                try:
                    privileges.check_object_permission_grant(
                        actor=actor, permission=permission.codename, target=str(environment),
                        user=data.get("user"), group=data.get("group"),
                    )
                except RuleViolation as exc:
                    raise forms.ValidationError(exc.message, code=exc.code) from exc
            return data

        return type(form.__name__, (form,), {"clean": clean})

    @admin.display(description="Environment", ordering="content_object")
    def environment(self, obj):
        return obj.content_object

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "permission":
            from django.contrib.auth.models import Permission

            kwargs["queryset"] = Permission.objects.filter(
                content_type__app_label="deployments", codename__in=["request_deployment", "approve_deployment"]
            )
            field = super().formfield_for_foreignkey(db_field, request, **kwargs)
            field.label_from_instance = lambda permission: GRANT_LABELS.get(permission.codename, permission.name)
            return field
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "content_object":
            field.label = "Environment"
        return field


@admin.register(EnvironmentGroupObjectPermission)
class EnvironmentGroupPermissionAdmin(EnvironmentUserPermissionAdmin):
    grantee_field = "group"
    list_display = ["environment", "group", "permission"]
    search_fields = ["group__name", "content_object__name", "content_object__service__name"]
    list_select_related = ["content_object__service", "group", "permission"]
    autocomplete_fields = []


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    can_delete = False
    fields = ["approver", "decision", "comment", "checklist", "policy_version", "policy_sha256", "policy_acknowledged",
              "created_at", "ip_address"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class EventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "actor", "message"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DeploymentRequest)
class DeploymentRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "environment", "ref", "short_sha", "requester", "status", "is_emergency",
                    "flagged_for_review", "created_at"]
    list_filter = ["status", "is_emergency", "flagged_for_review", "during_freeze", "source",
                   "environment__tier", "environment__service"]
    search_fields = ["sha", "ref", "requester__username", "requester_login", "environment__name",
                     "environment__service__name", "title"]
    list_select_related = ["environment__service", "requester"]
    date_hierarchy = "created_at"
    inlines = [ApprovalInline, EventInline]
    actions = ["cancel_requests"]

    @admin.action(description="Cancel the selected requests")
    def cancel_requests(self, request, queryset):
        done = 0
        for deployment_request in queryset:
            try:
                services.cancel_request(actor=request.user, request=deployment_request,
                                        reason="Cancelled by an administrator in the admin.")
                done += 1
            except RuleViolation as exc:
                self.message_user(request, f"#{deployment_request.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Cancelled {done} request(s).", messages.SUCCESS)

    def has_cancel_permission(self, request):
        return request.user.has_perm("deployments.change_deploymentrequest")

    cancel_requests.allowed_permissions = ["cancel"]


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ["request", "approver", "decision", "policy_version", "created_at", "ip_address"]
    list_filter = ["decision"]
    search_fields = ["approver__username", "comment", "request__sha"]
    list_select_related = ["request__environment__service", "approver"]


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "request", "kind", "actor", "message"]
    list_filter = ["kind"]
    search_fields = ["message", "actor__username"]
    list_select_related = ["request__environment__service", "actor"]


@admin.register(Refusal)
class RefusalAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "code", "environment", "request", "message"]
    list_filter = ["action", "code"]
    search_fields = ["actor__username", "message", "code"]
    list_select_related = ["actor", "environment__service", "request__environment__service"]
    date_hierarchy = "created_at"


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "started_at", "environment", "sha", "status", "authorized", "request", "flag_reason"]
    list_filter = ["status", "authorized", "environment__tier"]
    search_fields = ["sha", "external_id", "environment__name", "environment__service__name"]
    list_select_related = ["environment__service", "request__environment__service"]
    actions = ["flag_failed_change"]

    def has_flag_failed_change_permission(self, request) -> bool:
        # Administrators here; approvers flag from the request page (the service checks either way).
        return administers(request.user)

    @admin.action(description="Flag as a failed change (an incident traced to it)…", permissions=["flag_failed_change"])
    def flag_failed_change(self, request, queryset):
        """Opens the flag page for one execution (the reason is asked there; the service checks who may)."""
        chosen = list(queryset[:2])
        if len(chosen) != 1 or chosen[0].request_id is None:
            self.message_user(request, "Choose one execution of a deployment request to flag.", messages.ERROR)
            return None
        url = reverse("deployments:failed_change", args=[chosen[0].request_id])
        return HttpResponseRedirect(f"{url}?execution={chosen[0].pk}")
