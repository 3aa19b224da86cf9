"""Admin for decision deliveries (read-only, with a retry action), CI webhooks and API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from compliance.errors import RuleViolation

from . import delivery as delivery_services
from . import tokens
from .choices import TokenAction
from .models import ApiToken, DecisionDelivery, DeliveryAttempt, WebhookEndpoint
from .secrets import encrypt_secret


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
    url = forms.URLField(max_length=500, assume_scheme="https")
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

    @admin.display(boolean=True, description="Secret set")
    def has_secret(self, obj):
        return obj.has_secret

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("secret"):
            obj.secret_ciphertext = encrypt_secret(form.cleaned_data["secret"])
        super().save_model(request, obj, form, change)


class ApiTokenForm(forms.ModelForm):
    actions_allowed = forms.MultipleChoiceField(
        choices=TokenAction.choices, required=False, widget=forms.CheckboxSelectMultiple,
        label="Actions", help_text="Leave all unticked to allow whatever the user may do.",
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name", "services", "environments", "expires_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created here (the clear value is shown once, on the next page) and revoked here."""

    list_display = ["name", "prefix", "user", "actions", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["services", "environments"]
    actions = ["revoke_tokens"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "services", "environments", "actions_allowed", "expires_at"]
        return ["user", "name", "prefix", "services", "environments", "actions", "created_at", "created_by",
                "expires_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return self.get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        # Tokens are immutable once created: revoke and create another instead.
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        token, clear = tokens.create_api_token(
            actor=request.user,
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            services=form.cleaned_data["services"],
            environments=form.cleaned_data["environments"],
            actions=form.cleaned_data["actions_allowed"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = token.pk
        request._new_api_token = (token, clear)

    def save_related(self, request, form, formsets, change):
        pass  # the service set the scope

    def response_add(self, request, obj, post_url_continue=None):
        token, clear = request._new_api_token
        context = {**self.admin_site.each_context(request), "token": token, "clear": clear,
                   "title": "API token created", "opts": self.model._meta}
        return TemplateResponse(request, "admin/deployments/apitoken_created.html", context)

    @admin.action(description="Revoke the selected tokens", permissions=["change"])  # change_apitoken
    def revoke_tokens(self, request, queryset):
        for token in queryset:
            tokens.revoke_api_token(actor=request.user, token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)
