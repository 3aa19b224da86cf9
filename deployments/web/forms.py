"""Forms of the dashboard. They check the shape of what was typed (all field errors at once, never kept
as evidence); the rules (sha, ref pattern, freeze, permission) are the services' and their refusals are
recorded."""

from __future__ import annotations

from django import forms

from deployments.choices import RiskLevel
from deployments.gate import permissions
from deployments.models import Environment


class EnvironmentChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Environment) -> str:
        return f"{obj.service.name} / {obj.name} ({obj.get_tier_display()})"


class NewRequestForm(forms.Form):
    """A deployment request from the web: the same fields the API takes from CI."""

    environment = EnvironmentChoice(queryset=Environment.objects.none(), empty_label="Choose an environment")
    sha = forms.CharField(
        max_length=40,
        min_length=40,
        label="Commit sha",
        help_text="The full 40-character commit sha to deploy.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}),
    )
    ref = forms.CharField(max_length=255, label="Branch or tag", initial="main")
    title = forms.CharField(max_length=300, required=False, help_text="What this deployment changes.")
    change_authors = forms.CharField(
        max_length=2000,
        required=False,
        label="Change authors",
        help_text="Usernames or CI logins of the change's authors and committers, separated by commas.",
    )
    compare_url = forms.URLField(max_length=500, required=False, assume_scheme="https", label="Compare (diff) link")
    files_changed = forms.IntegerField(min_value=0, required=False)
    additions = forms.IntegerField(min_value=0, required=False)
    deletions = forms.IntegerField(min_value=0, required=False)
    # The change record: the service checks what the environment's policy requires (ticket pattern,
    # risk level, impact, rollback plan) and refuses with the rule's code.
    ticket = forms.CharField(max_length=100, required=False, label="Ticket",
                             help_text="The change's ticket, e.g. PAY-123 (required where the policy says so).")
    risk_level = forms.ChoiceField(choices=[("", "Not stated"), *RiskLevel.choices], required=False,
                                   label="Risk level")
    impact = forms.CharField(max_length=5000, required=False, label="Impact",
                             widget=forms.Textarea(attrs={"rows": 3}), help_text="What this change affects.")
    rollback_plan = forms.CharField(max_length=5000, required=False, label="Rollback plan",
                                    widget=forms.Textarea(attrs={"rows": 3}),
                                    help_text="How the change is undone if it fails.")
    is_emergency = forms.BooleanField(required=False, label="Emergency (needed during a deployment freeze)")
    justification = forms.CharField(
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why this cannot wait for the freeze to end (at least 20 characters).",
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = (
            permissions.environments_for(user, permissions.REQUEST)
            .select_related("service")
            .order_by("service__name", "name")
        )

    def clean_sha(self) -> str:
        return self.cleaned_data["sha"].strip().lower()

    def clean(self):
        data = super().clean()
        if data.get("is_emergency") and not (data.get("justification") or "").strip():
            self.add_error("justification", "An emergency request needs a justification.")
        return data

    def change_set(self) -> dict:
        data = self.cleaned_data
        out: dict = {key: data[key] for key in ("files_changed", "additions", "deletions") if data.get(key) is not None}
        if data.get("compare_url"):
            out["compare_url"] = data["compare_url"]
        return out

    def authors(self) -> list[str]:
        return [name.strip() for name in (self.cleaned_data.get("change_authors") or "").split(",") if name.strip()]


class DecisionForm(forms.Form):
    """The approver's decision as typed: every mistake at once (no choice, an unticked checklist item,
    a rejection without a comment, the policy not acknowledged). Mistakes of typing are not evidence
    and are not recorded; once the form is complete the services decide, and their refusals (not
    eligible, expired, already decided) are recorded."""

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")],
        error_messages={"required": "Choose Approve or Reject.", "invalid_choice": "Choose Approve or Reject."},
    )
    comment = forms.CharField(max_length=5000, required=False, strip=True)
    checklist = forms.MultipleChoiceField(required=False)
    acknowledge_policy = forms.CharField(required=False)

    def __init__(self, *args, checklist_items, policy_version, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.checklist_items = list(checklist_items)
        self.policy_version = policy_version
        self.fields["checklist"].choices = [(item, item) for item in self.checklist_items]
        self.fields["checklist"].error_messages["invalid_choice"] = (
            "The impact checklist changed since the page was loaded; reload it and confirm the items shown."
        )

    def clean(self):
        data = super().clean()
        if data.get("acknowledge_policy") != str(self.policy_version):
            self.add_error(
                "acknowledge_policy",
                f"Confirm that you decide under version {self.policy_version} of this environment's policy.",
            )
        decision = data.get("decision")
        if decision == "reject" and not data.get("comment"):
            self.add_error("comment", "A rejection needs a comment explaining why.")
        if decision == "approve" and "checklist" in data:
            unticked = [item for item in self.checklist_items if item not in data["checklist"]]
            if unticked:
                self.add_error(
                    "checklist",
                    f"Confirm every item of the impact checklist before approving: {', '.join(unticked)}.",
                )
        return data

    def answers(self) -> dict[str, bool]:
        ticked = set(self.cleaned_data.get("checklist") or ())
        return {item: item in ticked for item in self.checklist_items}
