"""The sign-in form: allauth's, accepting the older ``username`` field name too (scripts, bookmarks
and the portal's own tests post it), and the username django-axes throttles on."""

from __future__ import annotations

from allauth.account.forms import LoginForm
from django import forms


class PortalLoginForm(LoginForm):
    def __init__(self, *args, **kwargs):
        data = kwargs.get("data")
        if data is None and args:
            data, args = args[0], args[1:]
        if data is not None and "login" not in data and "username" in data:
            data = data.copy()
            data["login"] = data["username"]
        if data is not None:
            kwargs["data"] = data
        super().__init__(*args, **kwargs)
        self.fields["login"].widget.attrs["id"] = "id_username"
        self.fields["login"].label = "Username"

    def clean(self):
        from django.conf import settings

        if not settings.PORTAL_LOCAL_PASSWORDS:
            raise forms.ValidationError("Password sign-in is turned off here: use single sign-on.")
        return super().clean()


def axes_username(request, credentials: dict | None = None) -> str | None:
    """The username of a sign-in attempt, whichever field carried it (AXES_USERNAME_CALLABLE)."""
    if credentials:
        for key in ("username", "login"):
            if credentials.get(key):
                return str(credentials[key])
        return None
    data = getattr(request, "data", None) or request.POST
    return data.get("login") or data.get("username")
