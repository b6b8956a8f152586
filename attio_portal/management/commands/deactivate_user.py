"""Deactivate a portal user from the command line."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import ngettext

from attio_portal.accounts import deactivate_user, find_user


class Command(BaseCommand):
    help = "Deactivate a portal user: revoke their Attio connections and end their sessions."

    def add_arguments(self, parser):
        parser.add_argument("user", help="username or email address")

    def handle(self, *args, user: str, **options):
        target = find_user(user)
        if target is None:
            raise CommandError(f"No single user matches {user!r}.")
        revoked = deactivate_user(target, by=None)
        connections = ngettext("connection", "connections", revoked)
        self.stdout.write(
            f"Deactivated {target.get_username()}: {revoked} {connections} revoked, sessions ended."
        )
