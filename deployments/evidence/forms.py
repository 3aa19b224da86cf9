"""Forms of the evidence pages: drawing a sample, listing changes of a period, reviewing an emergency,
flagging a failed change."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from deployments.choices import EmergencyReviewOutcome

_name = RegexValidator(r"^[A-Za-z0-9_.\-/ ]*$", "Letters, digits, spaces and . _ - / only.")


class PeriodForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    service = forms.CharField(required=False, max_length=100, validators=[_name])
    environment = forms.CharField(required=False, max_length=100, validators=[_name])
    emergency_only = forms.BooleanField(required=False, label="Emergency changes only")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The period must end on or after the day it starts.")
        return cleaned


class SampleForm(PeriodForm):
    size = forms.IntegerField(min_value=1, initial=25, label="Number of changes")
    seed = forms.CharField(required=False, max_length=64,
                           help_text="Empty: a fresh random seed; an earlier sample's seed reproduces it.")


class EmergencyReviewForm(forms.Form):
    outcome = forms.ChoiceField(choices=EmergencyReviewOutcome.choices, widget=forms.RadioSelect)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000,
                            help_text="What you checked and concluded (at least 10 characters).")


class FailedChangeForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000,
                             help_text="The incident traced to this deployment: its reference and what happened "
                                       "(at least 10 characters). A flag is evidence and is never withdrawn.")
