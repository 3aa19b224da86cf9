"""API tokens in the admin: administrators make them for CI service accounts only; nobody deletes one."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse

from compliance.errors import RuleViolation
from compliance.people.identity import SYSTEM_USERNAME
from deployments.api import tokens
from deployments.choices import Action, TokenAction
from deployments.gate.services import record_refusal
from deployments.models import ApiToken
from deployments.web.tokens import scope_text
from portal.client import client_ip


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
            ip_address=client_ip(request),
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
                                        ip_address=client_ip(request))
                done += 1
            except RuleViolation as exc:
                self.message_user(request, f"Token {token.prefix}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Revoked {done} token(s).", messages.SUCCESS)
