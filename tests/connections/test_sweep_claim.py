"""A connection revoked while the sweep has it claimed is swept again once reconnected.

Beat's sweep claims a due connection (``sweep_claimed_at``) and queues a task for it. If
an admin revokes the connection before that task runs, the task must release the claim
(and reconnecting clears it too); otherwise no sweep would check or refresh the
reconnected connection until the claim lapsed. The browser walk-through first met this.
"""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from connections import freshness, services, sweep
from connections.models import Connection


def make_due(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        last_checked_at=timezone.now() - timedelta(hours=2)
    )


@pytest.mark.django_db
def test_a_connection_revoked_while_claimed_is_swept_again_once_reconnected(
    client, alice, staff, alice_connection, fake_attio
):
    make_due(alice_connection)
    claimed = [item.connection_id for item in sweep.claim_due_connections()]
    assert claimed == [alice_connection.pk]

    # The admin revokes before the sweep's task runs; the task then has nothing to do.
    services.revoke_connection(alice_connection, by=staff, reason="laptop stolen")
    assert freshness.ensure_fresh(alice_connection.pk) == freshness.Outcome.SKIPPED

    # Alice reconnects, as the dashboard banner asks.
    client.force_login(alice)
    start = client.post(reverse("connections:reconnect", args=[alice_connection.pk]))
    location = urlsplit(fake_attio.approve(start["Location"], workspace="acme"))
    assert client.get(f"{location.path}?{location.query}").status_code == 302
    restored = Connection.objects.get(pk=alice_connection.pk)
    assert restored.status == Connection.Status.ACTIVE

    # A validation interval later the next sweep must check it again.
    make_due(restored)
    due = [item.connection_id for item in sweep.claim_due_connections()]
    assert due == [restored.pk], (
        "the reconnected connection still carries the sweep claim taken before the "
        f"revocation (sweep_claimed_at={restored.sweep_claimed_at}), so no sweep checks "
        "or refreshes it until the claim expires"
    )
