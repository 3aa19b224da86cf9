"""allauth's models in the admin, held to the portal's rules (imported from ``compliance.admin``).

- Identity-provider configuration lives in the environment (docs/sso.md), never in the database: the
  social-application and token pages are removed (they would show client secrets and access tokens).
- E-mail addresses: allauth's "mark verified" action declares the change permission it needs.
- Linked single sign-on accounts and second factors are read-only records (a second factor is reset by
  its owner on their MFA page; the TOTP secret and WebAuthn data are never shown).
"""

from __future__ import annotations

import allauth.account.admin  # noqa: F401  (registers first, so the portal's versions replace them)
import allauth.mfa.admin  # noqa: F401
import allauth.socialaccount.admin  # noqa: F401
from allauth.account.admin import EmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin

from compliance.audit.admin_base import ReadOnlyAdmin


class PortalEmailAddressAdmin(EmailAddressAdmin):
    @admin.action(description="Mark as verified", permissions=["change"])
    def make_verified(self, request, queryset):
        return super().make_verified(request, queryset)


class LinkedAccountAdmin(ReadOnlyAdmin):
    list_display = ["user", "provider", "uid", "last_login", "date_joined"]
    search_fields = ["user__username", "uid"]
    list_filter = ["provider"]
    exclude = ["extra_data"]


class SecondFactorAdmin(ReadOnlyAdmin):
    list_display = ["user", "type", "created_at", "last_used_at"]
    search_fields = ["user__username"]
    list_filter = ["type"]
    exclude = ["data"]


for _model in (EmailAddress, SocialAccount, SocialApp, SocialToken, Authenticator):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
admin.site.register(EmailAddress, PortalEmailAddressAdmin)
admin.site.register(SocialAccount, LinkedAccountAdmin)
admin.site.register(Authenticator, SecondFactorAdmin)
