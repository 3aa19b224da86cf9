from __future__ import annotations

from django import forms


class CourseCompletionForm(forms.Form):
    """The quiz (one radio group per question) and the attestation checkbox naming the policy version."""

    def __init__(self, *args, course, statement: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.questions = list(course.questions.all())
        for question in self.questions:
            self.fields[f"q{question.pk}"] = forms.TypedChoiceField(
                label=question.text,
                choices=list(enumerate(question.choices)),
                coerce=int,
                widget=forms.RadioSelect,
            )
        self.fields["confirm"] = forms.BooleanField(label=statement, required=False)

    def answers(self) -> dict[str, int]:
        return {str(q.pk): self.cleaned_data[f"q{q.pk}"] for q in self.questions}


class ReminderForm(forms.Form):
    user_ids = forms.TypedMultipleChoiceField(coerce=int, choices=(), widget=forms.MultipleHiddenInput)

    def __init__(self, *args, people, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user_ids"].choices = [(p.pk, p.username) for p in people]
