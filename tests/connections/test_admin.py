"""The admin: no token on any page, revocation and checks through the services, a
read-only audit log, and deactivating users."""

import io
import re
from unittest import mock

import pytest
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connections import admin as admin_views
from connections import services, tasks
from connections.models import AuditEvent, Connection, PendingRevocation

CHANGELIST = reverse("admin:connections_connection_changelist")
AUDIT_CHANGELIST = reverse("admin:connections_auditevent_changelist")
USER_CHANGELIST = reverse("admin:auth_user_changelist")


@pytest.fixture(autouse=True)
def no_broker():
    """Anything enqueued on Celery is recorded instead of reaching a broker."""
    with (
        mock.patch.object(tasks.revoke_upstream, "delay", autospec=True),
        mock.patch.object(tasks.revoke_upstream, "apply_async", autospec=True),
        mock.patch.object(tasks.notify_needs_reconnect, "delay", autospec=True),
    ):
        yield


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def change_url(connection) -> str:
    return reverse("admin:connections_connection_change", args=[connection.pk])


def secrets_of(*connections) -> list[str]:
    found = []
    for c in connections:
        c.refresh_from_db()
        found += [c.access_token(), c.refresh_token() or ""]
        found += [c.access_token_sealed, c.refresh_token_sealed]
    return [s for s in found if s]


def assert_no_secret(page: str, secrets: list[str]):
    for secret in secrets:
        assert secret not in page
        for start in range(len(secret) - 11):
            assert secret[start : start + 12] not in page, "a token fragment leaked"


def listed(response) -> set[int]:
    return {c.pk for c in response.context["cl"].result_list}


# --- No token on any page ------------------------------------------------------


@pytest.mark.parametrize("shape", ["static", "refreshing"])
def test_changelist_and_change_page_show_no_token(
    admin_client, alice, bob, make_connection, fake_attio, shape
):
    fake_attio.token_shape = shape
    alices = make_connection(alice, "acme")
    bobs = make_connection(bob, "globex", status=Connection.Status.NEEDS_RECONNECT)
    secrets = secrets_of(alices, bobs)
    assert len(secrets) == (8 if shape == "refreshing" else 4)

    changelist = admin_client.get(CHANGELIST)
    assert changelist.status_code == 200
    assert "alice@example.com" in changelist.text
    assert_no_secret(changelist.text, secrets)

    for connection in (alices, bobs):
        page = admin_client.get(change_url(connection))
        assert page.status_code == 200
        assert "Has access token" in page.text
        assert "Has refresh token" in page.text
        assert connection.workspace_id in page.text
        assert_no_secret(page.text, secrets)


def test_change_page_offers_no_token_input(admin_client, alice_connection):
    page = admin_client.get(change_url(alice_connection)).text
    assert "access_token_sealed" not in page
    assert "refresh_token_sealed" not in page
    assert 'type="password"' not in page


def test_connection_page_is_a_view_without_save_buttons(admin_client, alice_connection):
    url = change_url(alice_connection)
    page = admin_client.get(url)
    assert page.status_code == 200
    for button in ('name="_save"', 'name="_continue"', 'name="_addanother"'):
        assert button not in page.text
    assert 'class="closelink"' in page.text
    assert reverse("admin:connections_connection_history", args=[alice_connection.pk]) in page.text
    # Nothing can be saved through the page either.
    before = Connection.objects.get(pk=alice_connection.pk)
    assert admin_client.post(url, {"_save": "Save"}).status_code == 403
    after = Connection.objects.get(pk=alice_connection.pk)
    assert (after.status, after.version, after.updated_at) == (
        before.status,
        before.version,
        before.updated_at,
    )
    # The list keeps its actions, which need the change permission.
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert {"revoke_selected", "check_now"} <= {name for name, _ in actions}


def test_pending_revocation_admin_shows_no_token(admin_client, alice, alice_connection, fake_attio):
    token = alice_connection.access_token()
    fake_attio.fail_next("revoke", status=503)
    services.revoke_connection(alice_connection, by=alice)
    pending = PendingRevocation.objects.get()
    pages = [
        admin_client.get(reverse("admin:connections_pendingrevocation_changelist")),
        admin_client.get(reverse("admin:connections_pendingrevocation_change", args=[pending.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        assert_no_secret(page.text, [token, pending.token_sealed])


# --- Search and filters ----------------------------------------------------------


def test_search_by_owner_email_and_workspace(
    admin_client, alice, alice_connection, bob, make_connection
):
    bobs_globex = make_connection(bob, "globex")
    assert listed(admin_client.get(CHANGELIST, {"q": "alice@example.com"})) == {alice_connection.pk}
    assert listed(admin_client.get(CHANGELIST, {"q": "Globex"})) == {bobs_globex.pk}
    assert listed(admin_client.get(CHANGELIST, {"q": "acme"})) == {alice_connection.pk}
    assert listed(admin_client.get(CHANGELIST, {"q": "nobody@example.com"})) == set()


def test_filter_by_status_and_method(
    admin_client, alice_connection, bob_connection, charlie, make_connection
):
    charlies = make_connection(charlie, "acme", method=Connection.Method.API_KEY)
    by_status = admin_client.get(CHANGELIST, {"status__exact": "needs_reconnect"})
    assert listed(by_status) == {bob_connection.pk}
    active = admin_client.get(CHANGELIST, {"status__exact": "active"})
    assert listed(active) == {alice_connection.pk, charlies.pk}
    by_method = admin_client.get(CHANGELIST, {"method__exact": "api_key"})
    assert listed(by_method) == {charlies.pk}
    oauth = admin_client.get(CHANGELIST, {"method__exact": "oauth"})
    assert listed(oauth) == {alice_connection.pk, bob_connection.pk}


# --- Revoking -----------------------------------------------------------------


def run_action(client, action, pks, **extra):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
    return client.post(CHANGELIST, data, follow="apply" in extra)


def test_revoke_action_asks_for_a_reason_first(
    admin_client, alice_connection, bob_connection, fake_attio
):
    response = run_action(admin_client, "revoke_selected", [alice_connection.pk, bob_connection.pk])

    assert response.status_code == 200
    assert 'name="reason"' in response.text
    assert 'name="apply"' in response.text
    assert str(alice_connection) in response.text
    assert str(bob_connection) in response.text
    assert fake_attio.count("revoke") == 0
    for connection in (alice_connection, bob_connection):
        connection.refresh_from_db()
        assert connection.status != Connection.Status.REVOKED


def test_revoke_action_without_a_reason_revokes_nothing(admin_client, alice_connection, fake_attio):
    response = run_action(
        admin_client, "revoke_selected", [alice_connection.pk], apply="1", reason=""
    )
    assert "This field is required." in response.text
    alice_connection.refresh_from_db()
    assert alice_connection.is_usable
    assert fake_attio.count("revoke") == 0


def test_revoke_action_revokes_through_the_service_with_reason_and_actor(
    admin_client, staff, alice, alice_connection, bob, bob_connection, fake_attio, worker
):
    tokens = {alice_connection.access_token(), bob_connection.access_token()}
    pks = [alice_connection.pk, bob_connection.pk]

    with worker():
        response = run_action(
            admin_client, "revoke_selected", pks, apply="1", reason="Left the team"
        )

    assert response.status_code == 200
    assert "Revoked 2 connections." in response.text
    assert fake_attio.count("revoke") == 2
    assert {c.form["token"] for c in fake_attio.calls_to("revoke")} == tokens
    assert all(not fake_attio.token_info(t).active for t in tokens)
    for connection, owner in ((alice_connection, alice), (bob_connection, bob)):
        connection.refresh_from_db()
        assert connection.status == Connection.Status.REVOKED
        assert connection.access_token_sealed == ""
        assert connection.revoked_at is not None
        event = AuditEvent.objects.get(kind=AuditEvent.Kind.REVOKED_BY_ADMIN, connection=connection)
        assert event.actor == staff
        assert event.subject == owner
        assert event.reason == "Left the team"
        assert str(event.ip_address) == "127.0.0.1"
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.DISCONNECTED).exists()

    again = run_action(admin_client, "revoke_selected", pks, apply="1", reason="Left the team")

    assert "Revoked 0 connections." in again.text
    assert fake_attio.count("revoke") == 2
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REVOKED_BY_ADMIN).count() == 2


def test_check_now_marks_an_inactive_connection_needs_reconnect(
    admin_client, alice_connection, charlie, make_connection, fake_attio
):
    working = make_connection(charlie, "globex")
    fake_attio.deactivate(alice_connection.access_token())

    response = run_action(
        admin_client,
        "check_now",
        [alice_connection.pk, working.pk],
        index="0",
    )

    assert response.status_code == 302
    assert fake_attio.count("self") == 2
    alice_connection.refresh_from_db()
    working.refresh_from_db()
    assert alice_connection.status == Connection.Status.NEEDS_RECONNECT
    assert alice_connection.last_error_code == "inactive"
    assert working.status == Connection.Status.ACTIVE
    page = admin_client.get(CHANGELIST).text
    assert "Checked 2 connections; 1 working." in page
    assert AuditEvent.objects.filter(
        kind=AuditEvent.Kind.NEEDS_RECONNECT, connection=alice_connection
    ).exists()


def test_check_now_records_the_admins_address_on_every_outcome(
    admin_client, staff, alice, bob, charlie, make_user, make_connection, fake_attio
):
    working = make_connection(alice, "acme")
    refused = make_connection(bob, "acme")
    fake_attio.deactivate(refused.access_token())
    unreachable = make_connection(charlie, "acme")
    fake_attio.token_shape = "refreshing"
    expiring = make_connection(make_user("dora"), "globex")
    Connection.objects.filter(pk=expiring.pk).update(expires_at=timezone.now())

    for connection in (working, refused, unreachable, expiring):
        if connection == unreachable:
            fake_attio.fail_next("self", status=503)
        response = admin_client.post(
            CHANGELIST,
            {"action": "check_now", "_selected_action": [connection.pk], "index": "0"},
            REMOTE_ADDR="198.51.100.7",
        )
        assert response.status_code == 302

    events = AuditEvent.objects.filter(connection__in=[working, refused, unreachable, expiring])
    assert {(e.connection_id, e.kind) for e in events} == {
        (working.pk, AuditEvent.Kind.CHECKED),
        (refused.pk, AuditEvent.Kind.NEEDS_RECONNECT),
        (unreachable.pk, AuditEvent.Kind.CHECK_FAILED),
        (expiring.pk, AuditEvent.Kind.REFRESHED),
    }
    assert {(e.actor, str(e.ip_address)) for e in events} == {(staff, "198.51.100.7")}


def test_check_now_of_one_connection_says_connection(admin_client, alice_connection, fake_attio):
    run_action(admin_client, "check_now", [alice_connection.pk], index="0")
    assert "Checked 1 connection; 1 working." in admin_client.get(CHANGELIST).text


def test_an_admin_revoking_their_own_connection_is_an_admin_revocation(
    admin_client, staff, make_connection, fake_attio
):
    own = make_connection(staff, "acme")

    response = run_action(
        admin_client, "revoke_selected", [own.pk], apply="1", reason="Laptop stolen"
    )

    assert "Revoked 1 connection." in response.text
    own.refresh_from_db()
    assert own.status == Connection.Status.REVOKED
    assert own.revoked_by_owner is False
    event = AuditEvent.objects.get(connection=own, kind=AuditEvent.Kind.REVOKED_BY_ADMIN)
    assert (event.actor, event.subject, event.reason) == (staff, staff, "Laptop stolen")
    assert str(event.ip_address) == "127.0.0.1"
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.DISCONNECTED).exists()


def test_connections_cannot_be_added_or_deleted(admin_client, alice_connection):
    model_admin = admin.site._registry[Connection]
    request = admin_client.get(CHANGELIST).wsgi_request
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.has_delete_permission(request, alice_connection) is False
    assert "delete_selected" not in model_admin.get_actions(request)
    add = reverse("admin:connections_connection_add")
    assert admin_client.get(add).status_code == 403
    delete = reverse("admin:connections_connection_delete", args=[alice_connection.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Connection.objects.filter(pk=alice_connection.pk).exists()


# --- The audit log ----------------------------------------------------------------


@pytest.fixture
def audit_events(alice, alice_connection, bob, bob_connection, fake_attio):
    services.revoke_connection(alice_connection, by=alice)
    services.record_event(AuditEvent.Kind.CHECKED, connection=bob_connection, actor=bob)
    services.record_event(AuditEvent.Kind.NEEDS_RECONNECT, connection=bob_connection, actor=None)
    return AuditEvent.objects.all()


def test_audit_admin_is_read_only(admin_client, audit_events):
    event = audit_events.first()
    model_admin = admin.site._registry[AuditEvent]
    request = admin_client.get(AUDIT_CHANGELIST).wsgi_request
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, event) is False
    assert model_admin.has_delete_permission(request, event) is False
    assert "delete_selected" not in model_admin.get_actions(request)

    change = reverse("admin:connections_auditevent_change", args=[event.pk])
    page = admin_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.text
    assert 'name="_continue"' not in page.text
    form = page.text.split('id="auditevent_form"')[1].split("</form>")[0]
    inputs = [
        tag
        for tag in re.findall(r"<input[^>]*>", form)
        if 'type="hidden"' not in tag and "csrfmiddlewaretoken" not in tag
    ]
    assert inputs == []
    assert "<textarea" not in form and "<select" not in form
    before = AuditEvent.objects.get(pk=event.pk)
    posted = admin_client.post(change, {"kind": "checked", "reason": "edited"})
    assert posted.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).reason == before.reason
    add = reverse("admin:connections_auditevent_add")
    assert admin_client.get(add).status_code == 403
    delete = reverse("admin:connections_auditevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_audit_admin_filters_by_kind_and_user(admin_client, audit_events, alice, bob):
    by_kind = admin_client.get(AUDIT_CHANGELIST, {"kind__exact": "disconnected"})
    assert by_kind.status_code == 200
    assert listed(by_kind) == set(
        AuditEvent.objects.filter(kind="disconnected").values_list("pk", flat=True)
    )
    assert len(listed(by_kind)) == 1
    by_user = admin_client.get(AUDIT_CHANGELIST, {"subject__id__exact": bob.pk})
    expected = set(AuditEvent.objects.filter(subject=bob).values_list("pk", flat=True))
    assert listed(by_user) == expected
    assert len(expected) >= 2
    assert not listed(by_user) & set(
        AuditEvent.objects.filter(subject=alice).values_list("pk", flat=True)
    )


def test_audit_list_shortens_long_reasons_and_keeps_them_in_a_tooltip(
    admin_client, staff, alice, alice_connection
):
    long_reason = "Left the team; " + "every token they held must go at once. " * 5
    services.record_event(
        AuditEvent.Kind.REVOKED_BY_ADMIN,
        connection=alice_connection,
        actor=staff,
        reason=long_reason,
    )
    services.record_event(
        AuditEvent.Kind.REVOKED_BY_ADMIN,
        connection=alice_connection,
        actor=staff,
        reason="user deactivated",
    )

    page = admin_client.get(AUDIT_CHANGELIST).text

    cells = re.findall(r'<td class="field-reason_summary">(.*?)</td>', page)
    assert len(cells) == 2
    short_cell, long_cell = cells  # newest first
    shown = re.fullmatch(r'<span title="([^"]*)">([^<]*)</span>', long_cell)
    assert shown is not None, long_cell
    assert shown[1] == long_reason.replace("'", "&#x27;")
    assert len(shown[2]) == admin_views.REASON_SUMMARY_CHARS
    assert shown[2].endswith("…") and long_reason.startswith(shown[2][:-1])
    assert short_cell == "user deactivated"
    assert "portal/admin.css" in page


def test_audit_events_cannot_be_changed_or_deleted_in_code(audit_events):
    event = AuditEvent.objects.first()
    event.reason = "rewritten"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(reason="rewritten")
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(TypeError):
        AuditEvent.objects.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(TypeError), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["reason"])
    count = audit_events.count()
    assert count >= 3
    assert not AuditEvent.objects.filter(reason="rewritten").exists()


def test_new_audit_events_can_still_be_appended(alice):
    event = AuditEvent(kind=AuditEvent.Kind.CHECKED, subject=alice)
    event.save()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_non_staff_user_is_sent_to_the_admin_login(client, alice, alice_connection):
    client.force_login(alice)
    for url in ("/admin/", CHANGELIST, change_url(alice_connection)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    response = client.post(
        CHANGELIST,
        {
            "action": "revoke_selected",
            "_selected_action": [alice_connection.pk],
            "reason": "x",
            "apply": "1",
        },
    )
    assert response.status_code == 302
    alice_connection.refresh_from_db()
    assert alice_connection.is_usable


# --- Deactivating users -----------------------------------------------------------


@pytest.fixture
def alice_signed_in(alice, alice_connection):
    browser = Client()
    browser.force_login(alice)
    assert browser.get(reverse("dashboard")).status_code == 200
    return browser


def assert_deactivated(user, browser, connections, fake_attio, *, actor):
    user.refresh_from_db()
    assert user.is_active is False
    session_key = browser.session.session_key
    assert not Session.objects.filter(session_key=session_key).exists()
    response = browser.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    revoked_tokens = {c.form["token"] for c in fake_attio.calls_to("revoke")}
    for connection, token in connections:
        connection.refresh_from_db()
        assert connection.status == Connection.Status.REVOKED
        assert connection.access_token_sealed == ""
        assert token in revoked_tokens
        assert fake_attio.token_info(token).active is False
        event = AuditEvent.objects.get(kind=AuditEvent.Kind.REVOKED_BY_ADMIN, connection=connection)
        assert event.actor == actor
        assert event.reason == "user deactivated"
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_DEACTIVATED, subject=user)
    assert event.actor == actor


def user_change_data(user) -> dict:
    joined = timezone.localtime(user.date_joined)
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        # is_active left out: the checkbox is unticked.
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "_save": "Save",
    }


def test_unticking_active_in_the_user_form_deactivates(
    admin_client, staff, alice, alice_connection, alice_signed_in, fake_attio, worker
):
    token = alice_connection.access_token()
    url = reverse("admin:auth_user_change", args=[alice.pk])
    assert admin_client.get(url).status_code == 200

    with worker():
        response = admin_client.post(url, user_change_data(alice), follow=True)

    assert response.status_code == 200
    assert "1 connection revoked, sessions ended" in response.text
    assert fake_attio.count("revoke") == 1
    assert_deactivated(alice, alice_signed_in, [(alice_connection, token)], fake_attio, actor=staff)


def test_saving_the_user_form_without_unticking_active_revokes_nothing(
    admin_client, alice, alice_connection, alice_signed_in, fake_attio
):
    url = reverse("admin:auth_user_change", args=[alice.pk])
    data = {**user_change_data(alice), "is_active": "on", "first_name": "Alice"}
    admin_client.post(url, data)
    alice.refresh_from_db()
    assert alice.first_name == "Alice" and alice.is_active
    alice_connection.refresh_from_db()
    assert alice_connection.is_usable
    assert fake_attio.count("revoke") == 0
    assert alice_signed_in.get(reverse("dashboard")).status_code == 200


def test_deactivate_selected_users_action(
    admin_client,
    staff,
    alice,
    alice_connection,
    alice_signed_in,
    bob,
    bob_connection,
    make_connection,
    fake_attio,
    worker,
):
    alices_globex = make_connection(alice, "globex")
    tokens = {c.pk: c.access_token() for c in (alice_connection, alices_globex, bob_connection)}
    bob_browser = Client()
    bob_browser.force_login(bob)

    with worker():
        response = admin_client.post(
            USER_CHANGELIST,
            {
                "action": "deactivate_selected",
                "_selected_action": [alice.pk, bob.pk, staff.pk],
                "index": "0",
            },
            follow=True,
        )

    assert "Deactivated 2 users; revoked 3 connections." in response.text
    assert fake_attio.count("revoke") == 3
    assert_deactivated(
        alice,
        alice_signed_in,
        [(c, tokens[c.pk]) for c in (alice_connection, alices_globex)],
        fake_attio,
        actor=staff,
    )
    assert_deactivated(
        bob,
        bob_browser,
        [(bob_connection, tokens[bob_connection.pk])],
        fake_attio,
        actor=staff,
    )
    staff.refresh_from_db()
    assert staff.is_active
    assert admin_client.get(USER_CHANGELIST).status_code == 200


def test_deactivate_user_command(alice, alice_connection, alice_signed_in, fake_attio, worker):
    token = alice_connection.access_token()
    out = io.StringIO()

    with worker():
        call_command("deactivate_user", "alice@example.com", stdout=out)

    assert "Deactivated alice: 1 connection revoked, sessions ended." in out.getvalue()
    assert fake_attio.count("revoke") == 1
    assert_deactivated(alice, alice_signed_in, [(alice_connection, token)], fake_attio, actor=None)


def test_deactivate_user_command_by_username_leaves_others_alone(
    alice, alice_connection, bob, bob_connection, fake_attio, worker
):
    with worker():
        call_command("deactivate_user", "alice", stdout=io.StringIO())
    bob.refresh_from_db()
    bob_connection.refresh_from_db()
    assert bob.is_active
    assert bob_connection.status == Connection.Status.NEEDS_RECONNECT
    assert bob_connection.access_token_sealed
    assert fake_attio.count("revoke") == 1


def test_deactivate_user_command_refuses_an_unknown_user(alice_connection, fake_attio):
    with pytest.raises(CommandError):
        call_command("deactivate_user", "nobody@example.com", stdout=io.StringIO())
    alice_connection.refresh_from_db()
    assert alice_connection.is_usable
    assert fake_attio.count("revoke") == 0
