from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from .registry import Filters

_name = RegexValidator(r"^[A-Za-z0-9_.\-/ ]*$", "Letters, digits, spaces and . _ - / only.")


class ReportFilterForm(forms.Form):
    """The filters every report page and export takes from the query string."""

    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    service = forms.CharField(required=False, max_length=100, validators=[_name], help_text="Service name")
    environment = forms.CharField(required=False, max_length=100, validators=[_name], help_text="Environment name")

    def __init__(self, data=None, **kwargs):
        # The query string uses the short names ``from`` and ``to``.
        if data is not None:
            data = {
                "date_from": data.get("from", ""),
                "date_to": data.get("to", ""),
                "service": data.get("service", ""),
                "environment": data.get("environment", ""),
            }
        super().__init__(data, **kwargs)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The period must end on or after the day it starts.")
        return cleaned

    def filters(self) -> Filters:
        data = self.cleaned_data
        return Filters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            service=(data.get("service") or "").strip(),
            environment=(data.get("environment") or "").strip(),
        )


def filters_from_query(query) -> tuple[Filters | None, ReportFilterForm]:
    form = ReportFilterForm(query)
    if not form.is_valid():
        return None, form
    return form.filters(), form
