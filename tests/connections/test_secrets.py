"""No token, code, API key or client secret is left anywhere readable: not in the
database (plain or encoded), not in logs at DEBUG, not in reprs or error messages."""

import base64
import io
import logging
from unittest import mock
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection as db
from django.urls import reverse
from django.utils import timezone

from connections import attio, tasks
from connections.connect import redirect_uri
from connections.crypto import generate_key_entry, parse_key
from connections.models import AuditEvent, Connection, PendingRevocation
from tests.leaks import leaks


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def connect(client, fake, workspace):
    authorize_url = client.post(reverse("connections:connect"))["Location"]
    location = fake.approve(authorize_url, workspace=workspace)
    response = client.get(callback_path(location))
    assert response.status_code == 302, response.content
    return location


def test_encodings_helper_finds_a_secret_inside_base64_at_any_offset():
    secret = "fake_at_" + "x1y2z3" * 7
    for prefix in (b"", b"a", b"ab", b"abc"):
        blob = base64.b64encode(prefix + secret.encode() + b"tail").decode()
        assert leaks(blob, [secret]) == [secret]
        url_blob = base64.urlsafe_b64encode(prefix + secret.encode()).decode()
        assert leaks(url_blob.rstrip("="), [secret]) == [secret]
    assert leaks(quote_plus(f"token={secret}&a=b"), [secret]) == [secret]
    assert leaks(secret.encode().hex(), [secret]) == [secret]
    assert leaks("nothing to see", [secret]) == []


def every_table_dump() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    parts = [out.getvalue()]
    with db.cursor() as cursor:
        for table in db.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    if isinstance(value, bytes):
                        value = value.decode("latin-1")
                    parts.append(str(value))
    # Session data is signed and may be compressed: read it decoded as well.
    parts += [str(s.get_decoded()) for s in Session.objects.all()]
    return "\n".join(parts)


def log_text(records) -> str:
    parts = []
    for record in records:
        parts += [record.getMessage(), str(record.msg), repr(record.args)]
        parts += [record.exc_text or "", str(record.exc_info or "")]
        # Any extra attribute too, except the request object django.request attaches
        # to every 4xx record: its repr is the callback URL with the PKCE-bound code.
        extra = {k: v for k, v in vars(record).items() if k != "request"}
        parts.append(repr(extra))
    return "\n".join(parts)


@pytest.fixture
def full_flow(client, make_user, fake_attio, caplog, worker):
    """Connect (both token shapes and an API key), check, refresh, fail, disconnect."""
    caplog.set_level(logging.DEBUG)
    user = make_user("dora")
    client.force_login(user)

    fake_attio.token_shape = "static"
    static_location = connect(client, fake_attio, "acme")
    fake_attio.token_shape = "refreshing"
    connect(client, fake_attio, "globex")
    static = Connection.objects.get(owner=user, workspace_name="Acme")
    rotating = Connection.objects.get(owner=user, workspace_name="Globex")

    # A replayed callback is refused (its code sits in the query string).
    assert client.get(callback_path(static_location)).status_code == 400
    # A failed code exchange.
    fake_attio.fail_next("token", status=400, body={"error": "invalid_grant"})
    authorize_url = client.post(reverse("connections:connect"))["Location"]
    assert client.get(callback_path(fake_attio.approve(authorize_url))).status_code == 400

    check = reverse("connections:check", args=[static.pk])
    rotating_check = reverse("connections:check", args=[rotating.pk])
    assert client.post(check).status_code == 302
    fake_attio.fail_next("self", status=503)
    client.post(check)
    fake_attio.fail_next("self", exception=attio.httpx.ReadTimeout)
    client.post(check)
    # Refresh the rotating connection, then fail a refresh.
    Connection.objects.filter(pk=rotating.pk).update(expires_at=None)
    client.post(rotating_check)
    fake_attio.fail_next("refresh", status=503)
    Connection.objects.filter(pk=rotating.pk).update(expires_at=None)
    client.post(rotating_check)
    assert fake_attio.count("refresh") >= 1

    # An API key, a bad API key, and a key Attio refuses with 401.
    key = fake_attio.add_api_key("acme")
    other = make_user("eve")
    client.force_login(other)
    client.post(reverse("connections:connect-api-key"), {"api_key": "fake_key_bogus1"})
    fake_attio.fail_next("self", status=401)
    client.post(reverse("connections:connect-api-key"), {"api_key": key})
    client.post(reverse("connections:connect-api-key"), {"api_key": key})
    keyed = Connection.objects.get(owner=other)
    fake_attio.deactivate(key)
    client.post(reverse("connections:check", args=[keyed.pk]))
    client.post(reverse("connections:disconnect", args=[keyed.pk]))

    # A failed check that marks needs_reconnect, then disconnects: one whose revoke
    # fails and waits as a pending revocation, one that succeeds.
    client.force_login(user)
    fake_attio.fail_next("self", status=401)
    client.post(check)
    fake_attio.fail_next("revoke", status=503)
    with worker():
        client.post(reverse("connections:disconnect", args=[static.pk]))
        client.post(reverse("connections:disconnect", args=[rotating.pk]))
    assert PendingRevocation.objects.count() == 1

    with (
        mock.patch.object(tasks.revoke_upstream, "delay", autospec=True) as delay,
        mock.patch.object(tasks.sweep_batch, "apply_async", autospec=True),
    ):
        PendingRevocation.objects.update(next_attempt_at=timezone.now())
        tasks.sweep_connections()
    assert [type(arg) for c in delay.call_args_list for arg in c.args] == [int]

    secrets = fake_attio.all_secrets()
    assert fake_attio.client_secret in secrets
    assert key in secrets
    assert len(secrets) >= 10
    return {"secrets": secrets, "records": caplog.records, "user": user}


def test_no_table_holds_a_secret_in_any_encoding(full_flow):
    dump = every_table_dump()
    assert "Acme" in dump and "Globex" in dump
    # The dump does cover the sealed columns: the pending revocation's is there.
    pending = PendingRevocation.objects.get()
    assert pending.token_sealed in dump
    assert pending.token() in full_flow["secrets"]
    assert leaks(dump, full_flow["secrets"]) == []


def test_no_log_record_holds_a_secret(full_flow):
    records = full_flow["records"]
    names = {r.name for r in records}
    assert {"connections.connect", "connections.freshness", "django.request"} <= names
    assert leaks(log_text(records), full_flow["secrets"]) == []


def test_http_library_loggers_stay_at_warning_when_root_logs_debug(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "aiohttp", "authlib", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING


def test_audit_events_hold_no_secret(full_flow):
    events = AuditEvent.objects.all()
    assert events.count() >= 8
    text = "\n".join(f"{e} {e!r} {e.reason} {e.detail} {e.workspace_name}" for e in events)
    assert leaks(text, full_flow["secrets"]) == []


def test_reprs_hold_no_secret(full_flow, fake_attio):
    secrets = full_flow["secrets"]
    material = settings.FIELD_ENCRYPTION_KEYRING.primary.material
    key_secrets = [
        base64.urlsafe_b64encode(material).decode(),
        base64.b64encode(material).decode(),
        material.hex(),
    ]
    objects = [
        *Connection.objects.all(),
        *PendingRevocation.objects.all(),
        *AuditEvent.objects.all(),
        settings.FIELD_ENCRYPTION_KEYRING,
        settings.FIELD_ENCRYPTION_KEYRING.primary,
    ]
    text = "\n".join(f"{o}\n{o!r}" for o in objects)
    assert leaks(text, secrets) == []
    assert all(s not in text for s in key_secrets)
    assert str(material) not in text


def test_token_set_repr_holds_no_token(fake_attio):
    fake_attio.token_shape = "refreshing"
    body = fake_attio.issue_tokens("acme")
    tokens = attio.TokenSet(access_token=body["access_token"], refresh_token=body["refresh_token"])
    assert leaks(f"{tokens} {tokens!r}", [body["access_token"], body["refresh_token"]]) == []


def test_fresh_key_ring_repr_holds_no_key_material():
    entry = generate_key_entry("k9")
    key = parse_key(entry)
    from connections.crypto import KeyRing

    ring = KeyRing([key])
    text = f"{ring} {ring!r} {key} {key!r}"
    assert entry.split(":", 1)[1] not in text
    assert key.material.hex() not in text
    assert "k9" in text


def attio_errors(fake):
    """AttioErrors raised from the fake's own error answers."""
    fake.token_shape = "refreshing"
    issued = fake.issue_tokens("acme")
    access, refresh = issued["access_token"], issued["refresh_token"]
    errors = []

    def catch(call):
        with pytest.raises(attio.AttioError) as info:
            call()
        errors.append(info.value)

    for status in (400, 401, 403, 404, 429, 500, 503):
        fake.fail_next("self", status=status)
        catch(lambda: attio.get_self(access))
    for status in (400, 401, 503):
        fake.fail_next("revoke", status=status)
        catch(lambda: attio.revoke_token(access))
    fake.fail_next("self", exception=attio.httpx.ReadTimeout)
    catch(lambda: attio.get_self(access))
    # A refresh token used twice, an unknown code, a bad verifier.
    attio.refresh_access_token(refresh)
    catch(lambda: attio.refresh_access_token(refresh))
    catch(
        lambda: attio.exchange_code(
            code="fake_code_never_issued_xyz",
            code_verifier="v" * 48,
            redirect_uri=redirect_uri(),
        )
    )
    fake.fail_next("refresh", status=503)
    catch(lambda: attio.refresh_access_token(access))
    fake.fail_next("token", status=401)
    catch(
        lambda: attio.exchange_code(
            code="fake_code_x", code_verifier="v" * 48, redirect_uri="http://x/"
        )
    )
    return errors, [access, refresh]


def test_attio_errors_from_the_fake_hold_no_token(fake_attio):
    errors, used = attio_errors(fake_attio)
    assert len(errors) == 15
    secrets = [*fake_attio.all_secrets(), "fake_code_never_issued_xyz", "v" * 48]
    assert set(used) <= set(secrets)
    for error in errors:
        text = f"{error} {error!r} {error.message} {error.code} {error.args}"
        assert leaks(text, secrets) == [], repr(error)


def test_authorization_code_never_reaches_a_response_body_or_location(client, charlie, fake_attio):
    client.force_login(charlie)
    authorize_url = client.post(reverse("connections:connect"))["Location"]
    location = fake_attio.approve(authorize_url)
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = client.get(callback_path(location), follow=True)
    texts = [response.text] + [url for url, _ in response.redirect_chain]
    replay = client.get(callback_path(location))
    texts.append(replay.text)
    connection = Connection.objects.get(owner=charlie)
    secrets = [code, connection.access_token()]
    assert leaks("\n".join(texts), secrets) == []


def error_report(records) -> str:
    """The report Django's AdminEmailHandler would send for a request's 500."""
    from django.views.debug import ExceptionReporter

    errors = [r for r in records if r.name == "django.request" and r.exc_info]
    assert len(errors) == 1
    record = errors[0]
    reporter = ExceptionReporter(record.request, *record.exc_info, is_email=True)
    return reporter.get_traceback_text() + reporter.get_traceback_html()


def test_error_report_from_an_api_key_connect_holds_no_key(client, charlie, fake_attio, caplog):
    key = fake_attio.add_api_key("acme")
    client.force_login(charlie)
    client.raise_request_exception = False

    # An unexpected failure deep in the service, after Attio confirmed the key.
    with mock.patch.object(Connection, "set_credentials", side_effect=RuntimeError("disk full")):
        response = client.post(reverse("connections:connect-api-key"), {"api_key": key})

    assert response.status_code == 500
    report = error_report(caplog.records)
    assert "connect_with_api_key" in report and "disk full" in report
    assert "local vars" in report.lower()
    assert leaks(report, [key]) == []
    assert not Connection.objects.exists()


def test_error_report_from_an_oauth_callback_holds_no_token(client, charlie, fake_attio, caplog):
    client.force_login(charlie)
    client.raise_request_exception = False
    authorize_url = client.post(reverse("connections:connect"))["Location"]
    location = fake_attio.approve(authorize_url)
    verifier = next(iter(client.session["attio_oauth_flows"].values()))["verifier"]

    with mock.patch.object(Connection, "set_credentials", side_effect=RuntimeError("disk full")):
        response = client.get(callback_path(location))

    assert response.status_code == 500
    report = error_report(caplog.records)
    assert "finish_oauth" in report and "disk full" in report
    tokens = [t for t in fake_attio.all_secrets() if t.startswith("fake_at_")]
    assert len(tokens) == 1
    assert leaks(report, [*tokens, fake_attio.client_secret, verifier]) == []
