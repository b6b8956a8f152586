"""Re-seal every stored token under the newest key in FIELD_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import ngettext

from connections.models import AuditEvent, Connection, PendingRevocation, keyring
from connections.services import record_event


def reseal(model, pk: int, fields: list[str]) -> bool:
    with transaction.atomic():
        # The row lock keeps a concurrent refresh from being overwritten; a row that
        # a refresh already sealed under the new key is skipped.
        row = model.objects.select_for_update().filter(pk=pk).first()
        if row is None or not row.reseal():
            return False
        row.save(update_fields=fields)
        return True


class Command(BaseCommand):
    help = (
        "Re-encrypt stored Attio tokens under the newest key. Resumable and safe to "
        "run while the portal is up; run it after adding a new key, before removing "
        "an old one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=200)

    def handle(self, *args, batch_size: int, **options):
        tables = [
            (Connection, ["access_token_sealed", "refresh_token_sealed"]),
            (PendingRevocation, ["token_sealed"]),
        ]
        total = 0
        for model, fields in tables:
            # Walk by primary key; an interrupted run just starts again, and rows
            # already under the newest key cost one read each.
            last_pk = 0
            while True:
                pks = list(
                    model.objects.filter(pk__gt=last_pk)
                    .order_by("pk")
                    .values_list("pk", flat=True)[:batch_size]
                )
                if not pks:
                    break
                changed = sum(reseal(model, pk, fields) for pk in pks)
                total += changed
                last_pk = pks[-1]
                self.stdout.write(
                    f"{model._meta.verbose_name_plural}: through id {last_pk}, "
                    f"{changed} re-encrypted"
                )
        primary = keyring().primary.key_id
        if total:
            record_event(AuditEvent.Kind.KEYS_REENCRYPTED, rows=total, key_id=primary)
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {total} {ngettext('row', 'rows', total)} re-encrypted under key "
                f"{primary!r}."
            )
        )
