"""Preview, then confirm: a write that cannot be undone (a delete, a bulk write) first
answers with what it would change and a fingerprint, and changes nothing. Called again
with `confirm` set to that fingerprint, it runs only for the same caller (user,
connection, and API key or app), the same tool and arguments, within
MCP_CONFIRM_SECONDS, and while what the preview showed is still so (read again).

A tool uses it so:

    confirmation = _confirm.check(caller, "delete_record", arguments, confirm)
    reading = await _confirm.record_to_delete(caller, object, record_id)
    if preview := confirmation.preview_unless_confirmed(reading):
        return ...  # the tool's answer with `preview`: nothing was changed
    ...  # the write

`check` refuses a fingerprint that is forged, old, or made for another caller or call
before anything is read from Attio; `preview_unless_confirmed` refuses one whose state
has changed. Annotations only ask clients to confirm; this makes the server insist.

The fingerprint is Django's TimestampSigner (keyed by SECRET_KEY, with its own salt) over
three keyed digests (salted_hmac): of the caller, of the call and of the state. It holds
no secret and no argument value in clear, needs no storage, and every worker process can
check it. A fingerprint is not marked as used: the write itself changes the state (a
deleted record is gone, a created one now matches, an added entry is listed), so it
fails the second time.
"""

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from ._call import ToolFailure, call_attio
from ._results import display_name

SALT = "mcp_gateway.tools.confirm"
# Each digest only tells a fingerprint's caller, call or state from another's; forging
# one needs the signer's full-length HMAC.
DIGEST_CHARS = 24

Confirm = Annotated[
    str | None,
    Field(
        max_length=256,
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="Omit to preview, then the `fingerprint`",
    ),
]


class Preview(BaseModel):
    changes: list[str] = Field(description="What confirming would change; show the user")
    fingerprint: str = Field(description="Pass as `confirm`, with the same arguments, to go ahead")
    expires_at: str = Field(description="A new preview is needed after this")


@dataclass
class Reading:
    """What a write would change, read from Attio: `state`, which must be the same when
    it is confirmed (compared as a digest), and `changes`, lines for the user."""

    state: Any
    changes: list[str]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(kind: str, value: Any) -> str:
    hmac = salted_hmac(f"{SALT}.{kind}", canonical(value), algorithm="sha256")
    return hmac.hexdigest()[:DIGEST_CHARS]


def caller_digest(caller: Caller) -> str:
    return digest(
        "caller",
        {
            "user": caller.user.pk,
            "connection": caller.connection.pk,
            "key": caller.key.pk if caller.key is not None else None,
            "app": caller.app.pk if caller.app is not None else None,
        },
    )


def signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def new_preview_needed(tool: str) -> str:
    return f"Call `{tool}` again without `confirm` for a new preview, and show it to the user."


@dataclass
class Confirmation:
    """One call of a tool that previews before it writes (made by `check`)."""

    caller: Caller
    tool: str
    call: str  # the digest of the tool and its arguments
    confirmed_state: str | None  # the state digest of the fingerprint given, if any

    def preview_unless_confirmed(self, reading: Reading) -> Preview | None:
        """The preview to answer with; None when the call was confirmed and the state is
        still the one its preview showed, so the write may go ahead.

        Raises ToolFailure if the state changed since the preview."""
        state = digest("state", reading.state)
        if self.confirmed_state is None:
            seconds = settings.MCP_CONFIRM_SECONDS
            payload = f"{caller_digest(self.caller)}.{self.call}.{state}"
            return Preview(
                changes=reading.changes,
                fingerprint=signer().sign(payload),
                expires_at=(timezone.now() + timedelta(seconds=seconds)).isoformat(),
            )
        if not constant_time_compare(state, self.confirmed_state):
            raise ToolFailure(
                "Nothing was changed: what the preview showed has changed since (someone "
                f"edited it, or an earlier call already did this). {new_preview_needed(self.tool)}",
                "confirm_changed",
            )
        return None


def check(
    caller: Caller, tool: str, arguments: dict[str, Any], confirm: str | None
) -> Confirmation:
    """The Confirmation of this call, `arguments` being the tool's arguments but `confirm`.

    Raises ToolFailure if `confirm` is given but is not a fingerprint the portal made,
    is older than MCP_CONFIRM_SECONDS, or was made for another caller or another call.
    """
    call = digest("call", {"tool": tool, "arguments": arguments})
    if confirm is None:
        return Confirmation(caller, tool, call, None)
    seconds = settings.MCP_CONFIRM_SECONDS
    try:
        payload = signer().unsign(confirm, max_age=seconds)
    except signing.SignatureExpired:
        raise ToolFailure(
            f"Nothing was changed: the fingerprint is stale (a preview is good for "
            f"{seconds // 60 or 1} minutes at most). {new_preview_needed(tool)}",
            "confirm_stale",
        ) from None
    except signing.BadSignature:
        payload = ""
    parts = payload.split(".")
    if len(parts) != 3:
        raise ToolFailure(
            "Nothing was changed: `confirm` is not a fingerprint the portal made (it may "
            f"have been altered or cut short). {new_preview_needed(tool)}",
            "confirm_invalid",
        )
    made_for, made_for_call, state = parts
    if not constant_time_compare(made_for, caller_digest(caller)):
        raise ToolFailure(
            "Nothing was changed: the fingerprint was made for another user, API key, app "
            f"or connection. {new_preview_needed(tool)}",
            "confirm_other_caller",
        )
    if not constant_time_compare(made_for_call, call):
        raise ToolFailure(
            "Nothing was changed: the fingerprint was made for another call (another tool "
            f"or other arguments); confirm with these arguments' own preview. "
            f"{new_preview_needed(tool)}",
            "confirm_other_call",
        )
    return Confirmation(caller, tool, call, state)


class Deletion(BaseModel):
    deleted: bool = Field(description="false: only a preview, nothing was deleted yet")
    kind: str = Field(description="What is deleted: record or list entry")
    id: str
    preview: Preview | None = None


# --- What deleting a record or removing a list entry would change ----------------------------

# Attributes every record has, which say nothing about which record it is.
SYSTEM_ATTRIBUTES = {"name", "record_id", "created_at", "created_by"}
# The values a preview shows of a record, at most.
SHOWN_ATTRIBUTES = 4
# The fields that show one value, by kind (text, email, domain, phone, select...).
VALUE_FIELDS = (
    "value",
    "full_name",
    "email_address",
    "domain",
    "phone_number",
    "option",
    "status",
    "currency_value",
    "target_record_id",
    "locality",
)


def shown_value(value: Any) -> str | None:
    """One of Attio's value objects in a few words: its text, address, option title..."""
    if not isinstance(value, dict):
        return None
    for name in VALUE_FIELDS:
        found = value.get(name)
        if isinstance(found, dict):
            found = found.get("title")  # select options and statuses
        if found not in (None, ""):
            return str(found)
    return None


def key_values(values: dict) -> str:
    """A few of a record's or entry's values, for a preview: "domains: hooli.com; ..."."""
    shown = []
    for slug, items in values.items():
        texts = [t for t in (shown_value(v) for v in (items or [])[:3]) if t]
        if slug not in SYSTEM_ATTRIBUTES and texts:
            shown.append(f"{slug}: {', '.join(texts)}")
    return "; ".join(shown[:SHOWN_ATTRIBUTES])


async def record_to_delete(caller: Caller, object: str, record_id: str) -> Reading:
    """The record as it is now (raises the tool error of a 404 if it is gone)."""
    item = await call_attio(caller, attio.aget_record, object, record_id)
    values = item.get("values") or {}
    name = display_name(values)
    named = f"“{name}” ({record_id})" if name else record_id
    shown = key_values(values)
    return Reading(
        state=values,
        changes=[
            f"Deletes the {object} record {named} for good, with its list entries, notes "
            "and comments" + (f". It has {shown}." if shown else ".")
        ],
    )


async def entry_to_remove(caller: Caller, list: str, entry_id: str) -> Reading:
    """The entry as it is now, and its record's name (raises the tool error of a 404 if
    the entry is gone)."""
    entry = await call_attio(caller, attio.aget_entry, list, entry_id)
    values = entry.get("entry_values") or {}
    parent_object = str(entry.get("parent_object") or "")
    parent_id = str(entry.get("parent_record_id") or "")
    try:
        record = await call_attio(caller, attio.aget_record, parent_object, parent_id)
        name = display_name(record.get("values") or {})
    except ToolFailure:
        name = None  # the preview can do without the name
    named = f"“{name}” ({parent_object} {parent_id})" if name else f"{parent_object} {parent_id}"
    shown = key_values(values)
    return Reading(
        state=values,
        changes=[
            f"Removes {named} from the list `{list}` (entry {entry_id})"
            + (f", losing its list values ({shown})" if shown else "")
            + ". The record itself stays."
        ],
    )
