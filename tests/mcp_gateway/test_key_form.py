"""The new-key form asks for the least access unless the user chooses more."""

from django.urls import reverse

from mcp_gateway.forms import ApiKeyForm


def test_the_new_key_form_starts_on_read_only(client, alice, alice_connection):
    client.force_login(alice)

    page = client.get(reverse("mcp_gateway:key-create"))

    form = page.context["form"]
    assert form["access"].value() == "read_only"
    assert form.fields["access"].choices[0][0] == "read_only"
    checked = [w for w in form["access"].subwidgets if w.data["selected"]]
    assert [w.data["value"] for w in checked] == ["read_only"]
    assert 'value="read_only" required id="id_access_0" checked' in page.text


def test_radio_choices_are_a_fieldset_with_a_legend(client, alice, alice_connection):
    """Each radio has a label of its own, so the group's name is a legend, not a label."""
    client.force_login(alice)

    page = client.get(reverse("mcp_gateway:key-create")).text

    assert '<fieldset class="field">' in page and "<legend>Access</legend>" in page
    assert '<label for="">' not in page
    assert '<label for="id_access_0"><input type="radio" name="access"' in page


def test_access_is_still_required(alice, alice_connection):
    form = ApiKeyForm(
        {"name": "x", "connection": alice_connection.pk, "expires": "30", "nonce": "n"},
        owner=alice,
    )
    assert not form.is_valid()
    assert "access" in form.errors
