"""Forms for portal API keys, and the choices they share with the OAuth consent page;
the admin's tool policy form."""

import secrets
from datetime import timedelta

from django import forms
from django.utils import timezone

from connections.models import Connection

from .models import ToolPolicy, ToolProfile

EXPIRY_CHOICES = [
    ("never", "Never"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
]


# How much an assistant may do, for a key (ApiKeyForm) and an OAuth consent (ConsentForm).
ACCESS_CHOICES = [
    ("read_only", "Read only: the assistant may only look"),
    ("read_write", "Read and write: the assistant may create, change and delete"),
]


class ToolProfileField(forms.ChoiceField):
    """Which tools a key, or the app a consent connects, is shown (tools/__init__.py,
    COMPACT). Left out of a post (a script's, or an older page's), it is the full set."""

    def __init__(self, **options) -> None:
        super().__init__(
            choices=ToolProfile.choices,
            widget=forms.RadioSelect,
            initial=ToolProfile.FULL,
            required=False,
            label="Tools",
            help_text="Compact is for assistants that pay for every tool definition in every "
            "conversation: a few tools that still reach all of Attio.",
            **options,
        )

    def clean(self, value) -> str:
        return super().clean(value) or ToolProfile.FULL


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Where it will be used, e.g. “Claude Code on my laptop”.",
    )
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        label="Attio workspace",
        empty_label=None,
    )
    access = forms.ChoiceField(
        choices=ACCESS_CHOICES,
        widget=forms.RadioSelect,
        # Least privilege: writing is something the user asks for.
        initial="read_only",
    )
    tool_profile = ToolProfileField()
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", label="Expires")
    # One-time id of this form: a reload that posts it again creates nothing.
    nonce = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["nonce"].initial = secrets.token_urlsafe(24)
        self.fields["connection"].queryset = owner.attio_connections.live().order_by(
            "workspace_name"
        )
        self.fields["connection"].label_from_instance = lambda c: c.workspace_name

    @property
    def read_only(self) -> bool:
        return self.cleaned_data["access"] == "read_only"

    @property
    def expires_at(self):
        choice = self.cleaned_data["expires"]
        return None if choice == "never" else timezone.now() + timedelta(days=int(choice))


def tool_choices() -> list:
    """Every tool, reads and writes apart, each with the first line of what it does."""
    # Imported when a form is built: the registry imports the gateway, which imports this.
    from . import tools

    def choice(name: str) -> tuple[str, str]:
        summary = next(iter((tools.REGISTRY[name].fn.__doc__ or "").strip().splitlines()), "")
        return name, f"{name}: {summary}"

    reads = [choice(name) for name in tools.REGISTRY if tools.is_read_only(name)]
    writes = [choice(name) for name in tools.REGISTRY if not tools.is_read_only(name)]
    return [("Tools that read", reads), ("Tools that write", writes)]


class ToolPolicyForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        choices=tool_choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Besides every read tool, if that is ticked. attio_request ticked here may "
        "also write, within each key's or app's scope; otherwise it only reads.",
    )

    class Meta:
        model = ToolPolicy
        fields = ["name", "description", "all_read_tools", "tools", "groups", "users"]

    def clean_tools(self) -> list[str]:
        chosen = set(self.cleaned_data["tools"])
        return [name for _, group in tool_choices() for name, _ in group if name in chosen]
