from django.core.management.base import BaseCommand

from connections.crypto import generate_key_entry


class Command(BaseCommand):
    help = "Print a new AES-256 key entry for FIELD_ENCRYPTION_KEYS (KEY_ID:BASE64)."

    def add_arguments(self, parser):
        parser.add_argument("key_id", help="a short name for the key, e.g. k2 or 2026-11")

    def handle(self, *args, key_id: str, **options):
        self.stdout.write(generate_key_entry(key_id))
