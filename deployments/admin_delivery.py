"""Admin for decision deliveries (read-only, with a retry action), CI webhooks and API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse

from compliance.errors import RuleViolation
from compliance.people.identity import SYSTEM_USERNAME

from . import delivery as delivery_services
from . import tokens
from .choices import Action, TokenAction
from .models import ApiToken, DecisionDelivery, DeliveryAttempt, WebhookEndpoint
from .secrets import encrypt_secret
from .services import record_refusal
from .token_views import scope_text


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


class ApiTokenForm(forms.ModelForm):
    """A token for a CI service account. People create their own tokens (My API tokens): a token acts
    as its owner, so an administrator who could make one for a person could approve as them."""

    user = forms.ModelChoiceField(
        queryset=None, label="Service account",
        help_text="Tokens are created here only for CI service accounts. " + tokens.MY_TOKENS_HINT,
    )
    actions_allowed = forms.MultipleChoiceField(
        choices=TokenAction.choices, required=False, widget=forms.CheckboxSelectMultiple,
        label="Actions", help_text="Leave all unticked to allow whatever the account may do.",
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name", "services", "environments", "expires_at"]

    actor = None  # the administrator filling the form (set by ApiTokenAdmin.get_form)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        # Any active user is accepted by the field so that a crafted POST naming a person is refused
        # with the rule (and recorded) rather than with "not a valid choice"; only service accounts
        # are offered.
        field.queryset = get_user_model().objects.filter(is_active=True)
        offered = field.queryset.filter(is_service_account=True).exclude(username=SYSTEM_USERNAME).order_by("username")
        field.widget.choices = [("", "---------"), *((user.pk, str(user)) for user in offered)]

    def clean_user(self):
        user = self.cleaned_data["user"]
        refusal = tokens.issue_refusal(actor=self.actor, user=user)
        if refusal is not None:
            record_refusal(actor=self.actor, action=Action.CREATE_TOKEN, violation=refusal)
            raise forms.ValidationError(f"{refusal.message} ({refusal.code})", code=refusal.code)
        return user


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens for service accounts are created here (the clear value is shown once, on the next
    page); anyone's token can be revoked here by an administrator (not by view-only auditors)."""

    list_display = ["name", "prefix", "user", "actions", "scope", "created_by", "created_at", "expires_at",
                    "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "user__is_service_account"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user", "created_by"]
    filter_horizontal = ["services", "environments"]
    actions = ["revoke_tokens"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("services", "environments__service")

    @admin.display(description="Scope")
    def scope(self, obj):
        return scope_text(obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenForm
            form = super().get_form(request, obj, change=change, **kwargs)
            # The form checks, as the service will, that this administrator may issue the token.
            return type(form.__name__, (form,), {"actor": request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "services", "environments", "actions_allowed", "expires_at"]
        return ["user", "name", "prefix", "services", "environments", "scoped_services", "scoped_environments",
                "actions", "created_at", "created_by", "expires_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return self.get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        # Tokens are immutable once created: revoke and create another instead.
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # A revoked token stays as evidence of who held what.
        return False

    def has_revoke_permission(self, request):
        return request.user.has_perm("deployments.change_apitoken")

    def save_model(self, request, obj, form, change):
        token, clear = tokens.create_api_token(
            actor=request.user,
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            services=form.cleaned_data["services"],
            environments=form.cleaned_data["environments"],
            actions=form.cleaned_data["actions_allowed"],
            expires_at=form.cleaned_data["expires_at"],
            ip_address=request.META.get("REMOTE_ADDR") or None,
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

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        done = 0
        for token in queryset:
            try:
                tokens.revoke_api_token(actor=request.user, token=token,
                                        ip_address=request.META.get("REMOTE_ADDR") or None)
                done += 1
            except RuleViolation as exc:
                self.message_user(request, f"Token {token.prefix}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Revoked {done} token(s).", messages.SUCCESS)
