"""Chat channels (webhook URLs write-only) and the notification log (read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from compliance.audit.admin_base import ReadOnlyAdmin
from deployments.notifications.models import ChatChannel, NotificationLog


class ChatChannelForm(forms.ModelForm):
    """The webhook URL is write-only: it is encrypted on save and never displayed again."""

    webhook_url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Incoming webhook URL (a secret). Leave empty to keep the stored one.",
    )

    class Meta:
        model = ChatChannel
        fields = ["environment", "name", "kind", "is_active"]

    def clean(self):
        from deployments.notifications.dispatch import validate_webhook_url

        cleaned = super().clean()
        url = (cleaned.get("webhook_url") or "").strip()
        if not url and not self.instance.webhook_url_encrypted:
            self.add_error("webhook_url", "A webhook URL is required.")
        elif url and cleaned.get("kind"):
            problem = validate_webhook_url(cleaned["kind"], url)
            if problem:
                self.add_error("webhook_url", problem)
        return cleaned

    def save(self, commit=True):
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if url:
            self.instance.set_webhook_url(url)
        return super().save(commit=commit)


@admin.register(ChatChannel)
class ChatChannelAdmin(admin.ModelAdmin):
    """The webhook URL is write-only: the change form has an empty password field to replace it, and
    every other rendering (view-only pages of auditors included) shows only ``webhook_hint``."""

    form = ChatChannelForm
    list_display = ["name", "environment", "kind", "webhook_hint", "is_active"]
    list_filter = ["kind", "is_active"]
    list_select_related = ["environment__service"]
    readonly_fields = ["webhook_hint", "created_at"]
    search_fields = ["name", "environment__name", "environment__service__name"]

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # View-only: a read-only "webhook_url" row would call the decrypting property.
            return ["environment", "name", "kind", "webhook_hint", "is_active", "created_at"]
        return ["environment", "name", "kind", "webhook_url", "webhook_hint", "is_active", "created_at"]


@admin.register(NotificationLog)
class NotificationLogAdmin(ReadOnlyAdmin):
    list_display = ["request", "kind", "channel", "recipient", "period", "status", "attempts", "created_at"]
    list_filter = ["kind", "channel", "status"]
    list_select_related = ["request__environment__service"]
    search_fields = ["recipient"]
    readonly_fields = ["last_error"]
