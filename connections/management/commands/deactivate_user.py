from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import ngettext

from connections import services


class Command(BaseCommand):
    help = "Deactivate a portal user: revoke their Attio connections and end their sessions."

    def add_arguments(self, parser):
        parser.add_argument("user", help="username or email address")

    def handle(self, *args, user: str, **options):
        User = get_user_model()
        matches = User.objects.filter(username=user) or User.objects.filter(email__iexact=user)
        if len(matches) != 1:
            raise CommandError(f"No single user matches {user!r}.")
        target = matches[0]
        revoked = services.deactivate_user(target, by=None)
        connections = ngettext("connection", "connections", revoked)
        self.stdout.write(
            f"Deactivated {target.get_username()}: {revoked} {connections} revoked, sessions ended."
        )
