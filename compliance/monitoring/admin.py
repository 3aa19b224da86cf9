"""Periodic jobs in the admin: the schedule is code, so only superusers change it, and every
change (and "run now") is in the audit trail. Heartbeats are evidence."""

from __future__ import annotations

from auditlog.models import LogEntry
from django.contrib import admin, messages
from django.db import transaction
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)

from ..audit.admin_base import ReadOnlyAdmin
from .models import JobHeartbeat


class SuperuserChangesOnlyMixin:
    """Viewable with the view permission; added, changed or deleted by superusers only."""

    def has_add_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class PortalPeriodicTaskAdmin(SuperuserChangesOnlyMixin, beat_admin.PeriodicTaskAdmin):
    """django-celery-beat's admin, with actions that need the change permission (superusers) and
    save task by task, so django-auditlog records each change with its actor."""

    @transaction.atomic
    def _set_enabled(self, request, queryset, enabled) -> int:
        changed = 0
        for task in queryset.select_related(None).select_for_update():
            value = (not task.enabled) if enabled is None else enabled
            if task.enabled != value:
                task.enabled = value
                if not value:
                    task.last_run_at = None
                task.save()
                changed += 1
        PeriodicTasks.update_changed()
        return changed

    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request, queryset):
        self.message_user(request, f"{self._set_enabled(request, queryset, True)} task(s) enabled.")

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request, queryset):
        count = self._set_enabled(request, queryset, False)
        self.message_user(
            request, f"{count} task(s) disabled. Beat re-enables the portal's own jobs when it restarts.",
            messages.WARNING,
        )

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request, queryset):
        self.message_user(request, f"{self._set_enabled(request, queryset, None)} task(s) toggled.")

    @admin.action(description="Run selected tasks", permissions=["change"])
    def run_tasks(self, request, queryset):
        tasks = list(queryset)
        super().run_tasks(request, queryset)
        for task in tasks:  # a run on demand is evidence too
            LogEntry.objects.log_create(
                task, force_log=True, action=LogEntry.Action.ACCESS, changes={"run_now": ["", task.task]},
                actor=request.user,
            )


class PortalScheduleAdmin(SuperuserChangesOnlyMixin, beat_admin.ScheduleAdmin):
    pass


class PortalClockedScheduleAdmin(SuperuserChangesOnlyMixin, beat_admin.ClockedScheduleAdmin):
    pass


class PortalCrontabScheduleAdmin(SuperuserChangesOnlyMixin, beat_admin.CrontabScheduleAdmin):
    pass


for _model, _admin in (
    (PeriodicTask, PortalPeriodicTaskAdmin),
    (ClockedSchedule, PortalClockedScheduleAdmin),
    (CrontabSchedule, PortalCrontabScheduleAdmin),
    (SolarSchedule, PortalScheduleAdmin),
    (IntervalSchedule, PortalScheduleAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)


@admin.register(JobHeartbeat)
class JobHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["task", "last_outcome", "last_started_at", "last_success_at", "runs", "failures", "alerted_at"]
    list_filter = ["last_outcome"]
    search_fields = ["task"]
