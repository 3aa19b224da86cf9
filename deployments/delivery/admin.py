"""Admin for decision deliveries (read-only, with a retry action), CI webhooks and API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from compliance.errors import RuleViolation
from deployments.delivery import outbox as delivery_services
from deployments.delivery.secrets import encrypt_secret
from deployments.models import DecisionDelivery, DeliveryAttempt, WebhookEndpoint


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "finished_at", "status_code", "outcome", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DecisionDelivery)
class DecisionDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "request", "provider", "decision", "status", "attempts", "next_attempt_at",
                    "last_status_code", "created_at", "delivered_at", "failed_at"]
    list_filter = ["status", "provider", "decision"]
    search_fields = ["request__sha", "provider", "last_error"]
    list_select_related = ["request__environment__service"]
    readonly_fields = ["request", "provider", "decision", "payload", "status", "attempts", "next_attempt_at",
                       "last_status_code", "last_error", "created_at", "delivered_at", "failed_at"]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_deliveries"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_retry_permission(self, request):
        return request.user.has_perm("deployments.change_decisiondelivery")

    @admin.action(description="Retry the selected failed deliveries", permissions=["retry"])
    def retry_deliveries(self, request, queryset):
        done = 0
        for row in queryset:
            try:
                delivery_services.retry_delivery(actor=request.user, delivery=row)
                done += 1
            except RuleViolation as exc:
                self.message_user(request, f"Delivery {row.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Queued {done} deliver{'y' if done == 1 else 'ies'} again.", messages.SUCCESS)


class WebhookEndpointForm(forms.ModelForm):
    # The outbound policy (https, public destinations unless allow-listed) is the model field's validator.
    url = forms.URLField(max_length=500, assume_scheme="https",
                         help_text="https:// URL of the receiver; internal addresses are refused unless allow-listed "
                                   "(PORTAL_OUTBOUND_ALLOWED_HOSTS).")
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signing secret shared with the receiver. Stored encrypted; never shown again. "
                  "Leave empty to keep the current one.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["environment", "url", "is_active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["environment", "url", "is_active", "has_secret", "updated_at"]
    list_filter = ["is_active"]
    list_select_related = ["environment__service"]
    search_fields = ["url", "environment__name", "environment__service__name"]
    readonly_fields = ["has_secret", "created_at", "updated_at"]

    def get_fields(self, request, obj=None):
        # The secret is write-only: the change form offers an empty field to replace it; view-only
        # pages (auditors) show only whether one is set.
        if obj is not None and not self.has_change_permission(request, obj):
            return ["environment", "url", "is_active", "has_secret", "created_at", "updated_at"]
        return ["environment", "url", "secret", "is_active", "has_secret"] if obj else [
            "environment", "url", "secret", "is_active"]

    @admin.display(boolean=True, description="Secret set")
    def has_secret(self, obj):
        return obj.has_secret

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("secret"):
            obj.secret_ciphertext = encrypt_secret(form.cleaned_data["secret"])
        super().save_model(request, obj, form, change)
