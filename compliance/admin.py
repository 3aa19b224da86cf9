from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm

from . import services
from .errors import RuleViolation
from .models import ReportExport, Suspension, User

admin.site.site_header = "Deployment authorization portal"
admin.site.site_title = "Deployment authorization"
admin.site.index_title = "Administration"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
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


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    list_display = ["user", "scope", "trigger", "started_at", "lifted_at", "reason"]
    list_filter = ["scope", "trigger", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "reason", "lift_reason"]
    list_select_related = ["user"]
    fields = ["user", "scope", "trigger", "reason", "started_at", "created_by", "lifted_at", "lifted_by", "lift_reason"]
    readonly_fields = ["started_at", "created_by", "lifted_at", "lifted_by"]
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

    @admin.action(description="Lift the selected suspensions (reason: lifted by an administrator)")
    def lift(self, request, queryset):
        for suspension in queryset.filter(lifted_at__isnull=True):
            try:
                services.lift_suspension(
                    actor=request.user, suspension=suspension, reason=f"Lifted by {request.user.username} in the admin."
                )
            except RuleViolation as exc:
                self.message_user(request, exc.message, messages.ERROR)


class ImmutableLogEntryAdmin(LogEntryAdmin):
    """Audit entries are browsable, never editable or deletable, by anyone."""

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


admin.site.unregister(LogEntry)
admin.site.register(LogEntry, ImmutableLogEntryAdmin)


@admin.register(ReportExport)
class ReportExportAdmin(admin.ModelAdmin):
    """Who exported which report: evidence, read-only for everyone."""

    list_display = ["created_at", "user", "report", "format", "channel", "filters", "ip_address"]
    list_filter = ["format", "channel", "report"]
    search_fields = ["user__username", "report"]
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
