"""Create a portal API key from the command line (for automation); prints it once."""

from django.core.management.base import BaseCommand, CommandError

from attio_portal.accounts import find_user
from mcp_gateway import services
from mcp_gateway.models import ToolProfile


class Command(BaseCommand):
    help = "Create an API key for a user's Attio connection and print it (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the owner's email or username")
        parser.add_argument(
            "--connection", type=int, help="connection id (needed if the user has several)"
        )
        parser.add_argument("--read-only", action="store_true", help="only read tools")
        parser.add_argument(
            "--compact",
            action="store_true",
            help="the compact tool profile (search, schema and the generic Attio request)",
        )
        parser.add_argument("--name", default="created with create_api_key")

    def handle(
        self,
        *args,
        user: str,
        connection: int | None,
        read_only: bool,
        compact: bool,
        name: str,
        **options,
    ):
        owner = find_user(user)
        if owner is None:
            raise CommandError(f"No single user matches {user!r}.")
        connections = owner.attio_connections.live()
        if connection is not None:
            connections = connections.filter(pk=connection)
        choices = list(connections)
        if not choices:
            raise CommandError(f"{owner} has no such live Attio connection; connect one first.")
        if len(choices) > 1:
            listed = ", ".join(f"{c.pk} ({c.workspace_name})" for c in choices)
            raise CommandError(
                f"{owner} has several connections; pick one with --connection: {listed}"
            )
        try:
            _, plaintext = services.create_api_key(
                owner,
                connection=choices[0],
                name=name,
                read_only=read_only,
                tool_profile=ToolProfile.COMPACT if compact else ToolProfile.FULL,
            )
        except services.ApiKeyError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(plaintext)
