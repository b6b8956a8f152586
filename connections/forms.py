"""Forms for connecting Attio."""

from django import forms


class AttioApiKeyForm(forms.Form):
    """A workspace API key pasted by the user, checked the way the seed checks it."""

    api_key = forms.CharField(
        label="Attio API key",
        strip=False,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Create one in Attio under Workspace settings → Developers → "
        "Access tokens. It is checked with Attio, then stored encrypted.",
    )

    def clean_api_key(self) -> str:
        value = self.cleaned_data["api_key"]
        if not value or not value.strip():
            raise forms.ValidationError("Paste your Attio API key; the field is empty.")
        if value != value.strip():
            raise forms.ValidationError(
                "The key has spaces or line breaks before or after it; remove them."
            )
        if any(ch.isspace() for ch in value):
            raise forms.ValidationError(
                "The key contains spaces or line breaks; paste it as a single word."
            )
        if not (value.isascii() and value.isprintable()):
            raise forms.ValidationError(
                "An Attio API key has only letters, digits and punctuation; this one "
                "contains other characters. Copy it again from Attio."
            )
        if len(value) < 10:
            raise forms.ValidationError(
                "That is too short to be an Attio API key (at least 10 characters)."
            )
        return value


class RevokeReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit log with your name.",
    )
