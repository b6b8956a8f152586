"""Run the test identity provider: `python -m tests.oidc_provider PORT REDIRECT_URI DB`.

Migrates a fresh SQLite database, adds its users and the portal's client, and serves on
127.0.0.1:PORT until killed (callers wait for its discovery document)."""

import os
import sys

PASSWORD = "provider-password-1"
CLIENT_ID = "attio-portal"
CLIENT_SECRET = "attio-portal-client-secret"
# username, email, verified
USERS = [
    ("ada", "ada@team.example", True),
    ("ben", "Ben@Team.Example", True),
    ("una", "una@team.example", False),
    ("eve", "eve@other.example", True),
]


def main(port: int, redirect_uri: str, database: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    os.environ["OIDC_PROVIDER_URL"] = f"http://127.0.0.1:{port}"
    os.environ["OIDC_PROVIDER_DB"] = database

    import django

    django.setup()

    import uvicorn
    from django.contrib.auth.models import Group, User
    from django.core.asgi import get_asgi_application
    from django.core.management import call_command
    from oauth2_provider.models import Application

    from .validator import UNVERIFIED

    call_command("migrate", verbosity=0)
    unverified = Group.objects.create(name=UNVERIFIED)
    for username, email, verified in USERS:
        user = User.objects.create_user(username, email, PASSWORD, first_name=username.title())
        if not verified:
            user.groups.add(unverified)
    Application.objects.create(
        name="Attio Portal",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    config = uvicorn.Config(
        get_asgi_application(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
