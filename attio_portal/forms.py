"""The portal's sign-in and password reset forms, and the usage page's range of days."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.utils import timezone


class SignInForm(AuthenticationForm):
    username = forms.CharField(
        label="Username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )


class ResetForm(PasswordResetForm):
    """Django's reset form; with password sign-in off, only superusers get the email (no
    one else could use the password)."""

    def get_users(self, email):
        users = super().get_users(email)
        if settings.PASSWORD_SIGN_IN:
            return users
        return (user for user in users if user.is_superuser)


class DayRangeForm(forms.Form):
    """A range of whole days (UTC), the last 30 by default, a year at most."""

    DEFAULT_DAYS = 30
    MAX_DAYS = 366

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        today = timezone.now().date()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=self.DEFAULT_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The first day must not be after the last.")
        if (end - start).days + 1 > self.MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {self.MAX_DAYS} days.")
        data["start"], data["end"] = start, end
        return data

    def days(self):
        """(start, end): the range asked for, or the default one if it was not valid."""
        if self.is_valid():
            return self.cleaned_data["start"], self.cleaned_data["end"]
        end = timezone.now().date()
        return end - timedelta(days=self.DEFAULT_DAYS - 1), end
