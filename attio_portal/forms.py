"""The portal's sign-in and password reset forms."""

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm


class SignInForm(AuthenticationForm):
    username = forms.CharField(
        label="Username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not settings.PASSWORD_SIGN_IN and not user.is_superuser:
            raise forms.ValidationError(
                f"Sign in with {settings.OIDC_PROVIDER_NAME}: passwords are for "
                "administrators only here.",
                code="password_sign_in_off",
            )


class ResetForm(PasswordResetForm):
    """Django's reset form; with password sign-in off, only superusers get the email (no
    one else could use the password)."""

    def get_users(self, email):
        users = super().get_users(email)
        if settings.PASSWORD_SIGN_IN:
            return users
        return (user for user in users if user.is_superuser)
