"""The portal's forms and the OAuth callback, fed arbitrary input: never a 500."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

text = st.text(max_size=80)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_no_crash(response) -> None:
    assert response.status_code < 500
    assert b"Traceback" not in response.content


@pytest.fixture
def signed_in(client, alice, alice_connection):
    client.force_login(alice)
    return client


@FUZZ
@given(
    params=st.dictionaries(st.sampled_from(["code", "state", "error", "iss", "next", "x"]), text)
)
def test_oauth_callback_with_arbitrary_parameters(signed_in, fake_attio, params):
    response = signed_in.get(reverse("connections:callback"), params)
    assert_no_crash(response)
    assert response.status_code == 400
    # No flow was started, so no code ever reaches Attio's token endpoint.
    assert fake_attio.count("token") == 0


@FUZZ
@given(username=text, password=text)
def test_sign_in_with_arbitrary_credentials(client, db, username, password):
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert_no_crash(response)


@FUZZ
@given(api_key=text)
def test_api_key_form_with_arbitrary_input(signed_in, fake_attio, api_key):
    assert_no_crash(signed_in.post(reverse("connections:connect-api-key"), {"api_key": api_key}))


@FUZZ
@given(
    form=st.fixed_dictionaries(
        {},
        optional={
            "name": text,
            "connection": text | st.integers().map(str),
            "access": text | st.sampled_from(["read_only", "read_write"]),
            "expires": text | st.sampled_from(["never", "30", "90", "365"]),
        },
    )
)
def test_key_form_with_arbitrary_input(signed_in, form):
    assert_no_crash(signed_in.post(reverse("mcp_gateway:key-create"), form))


@FUZZ
@given(pk=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_connection_and_key_urls_with_arbitrary_ids(signed_in, pk):
    for name in ("connections:disconnect", "mcp_gateway:key-revoke"):
        try:
            url = reverse(name, args=[pk])
        except Exception:  # noqa: BLE001 - negative ids don't match the URL pattern at all
            continue
        assert_no_crash(signed_in.get(url))
        assert_no_crash(signed_in.post(url))
