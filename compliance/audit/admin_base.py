"""The one read-only admin: evidence is viewable by those with the view permission, never added,
changed or deleted through the admin — by anyone, superusers included."""

from django.contrib import admin


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A ModelAdmin for evidence."""
