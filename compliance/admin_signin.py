"""Sign-in records in the admin (django-axes): evidence of who signed in, failed and was locked out.

Access logs and failure logs are read-only for everyone, superusers included: nothing deletes them
from the admin. Access attempts are the live lockout counters; they expire by themselves after the
cool-off time. Nobody deletes them here either (that would lift a lockout without trace); a
superuser may run *Clean up expired attempts*, which removes only counters whose cool-off is over —
each failure stays in the failure log.
"""

from __future__ import annotations

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin

from .admin_base import ReadOnlyAdminMixin


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
