"""The whole Attio API in two tools: `find_attio_operation` finds an operation in Attio's
OpenAPI document and describes it, `attio_request` calls it, checked against the document
before anything is sent."""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from connections import attio
from connections.openapi import catalogue
from connections.openapi.catalogue import Operation, RequestProblem

from .. import policy
from ..auth import Caller
from . import _confirm, tool
from ._call import ToolFailure, call_attio, forget_slugs
from ._confirm import Confirm, Preview

# The JSON of a request's path_params, query and body together, at most: Attio's own
# bodies are a few kilobytes, and a model that sends more has made a mistake.
MAX_REQUEST_CHARS = 100_000
# Attio's answer, at most (as JSON): more than a model can use in one turn.
MAX_ANSWER_CHARS = 40_000

# Deleting a record or removing a list entry is previewed, then confirmed (_confirm.py),
# here as in `delete_record` and `remove_from_list`: never in one step.
CONFIRMED = {
    "DELETE /v2/objects/{object}/records/{record_id}": ("object", "record_id"),
    "DELETE /v2/lists/{list}/entries/{entry_id}": ("list", "entry_id"),
}
# The audit codes of a write refused to a read-only API key, and to a read-only OAuth grant
# (as policy.py records them for the write tools).
READ_ONLY_CODES = ("read_only_key", "insufficient_scope")
# Writes to these change records or list entries: their ids go in the audit row.
RECORD_PATHS = ("/v2/objects/{object}/records", "/v2/lists/{list}/entries")
ID_PARAMETERS = ("record_id", "entry_id")


def refusal(caller: Caller, operation: Operation) -> ToolFailure | None:
    """Why the portal will not send `operation` for this caller, if it won't. Nothing else:
    `find_attio_operation` asks it of every operation to choose what to show."""
    if operation.is_webhook:
        return ToolFailure(
            "The portal does not serve Attio's webhook operations: a webhook sends the "
            "workspace's data to an address the caller chooses.",
            "not_served",
        )
    missing = catalogue.missing_scopes(operation, caller.connection.scope_list)
    if missing:
        return ToolFailure(
            f"The Attio connection was not granted {', '.join(missing)}, which "
            f"{operation.name} needs. An Attio admin can grant it to the app; then "
            "reconnect at the portal.",
            "missing_scope",
        )
    # The policies before the read-only check: asking the user for write access (a
    # read-only grant's 403) is no use where a policy would refuse the write anyway.
    if not policy.in_tool_policy(caller, "attio_request"):
        return ToolFailure(policy.tool_policy_refusal(caller, "attio_request"), "not_in_policy")
    if not operation.is_read and not policy.policy_allows_api_writes(caller):
        return ToolFailure(
            f"{operation.name} writes, and under {policy.policies_named(caller)} "
            f"`attio_request` may only read. {policy.ASK_AN_ADMIN}",
            "not_in_policy",
        )
    if caller.read_only and not operation.is_read:
        code = READ_ONLY_CODES[0] if caller.key is not None else READ_ONLY_CODES[1]
        return ToolFailure(f"{operation.name} writes, and this access is read-only.", code)
    return None


def callable_operations(caller: Caller) -> list[Operation]:
    operations = catalogue.catalogue().operations.values()
    return [operation for operation in operations if refusal(caller, operation) is None]


class OperationMatch(BaseModel):
    operation: str
    summary: str


class OperationsFound(BaseModel):
    matches: list[OperationMatch] = []
    described: dict[str, Any] | None = Field(
        None, description="The operation asked for: parameters and body schema"
    )


def named_operation(text: str) -> Operation | None:
    method, _, template = text.strip().partition(" ")
    return catalogue.get(method.upper(), template.strip())


def matches(operations: list[Operation]) -> list[OperationMatch]:
    return [OperationMatch(operation=o.name, summary=o.summary) for o in operations]


@tool(title="Find an Attio API operation", read_only=True)
async def find_attio_operation(
    caller: Caller,
    query: Annotated[str, Field(max_length=200, description="Words, e.g. `list meetings`")] = "",
    operation: Annotated[
        str | None, Field(max_length=200, description="`METHOD /path` to describe")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=20, description="Max matches")] = 8,
) -> OperationsFound:
    """Search the Attio operations `attio_request` can call, or describe one (`operation`)."""
    if operation:
        found = named_operation(operation)
        if found is None:
            close = catalogue.search(operation, 5, among=callable_operations(caller))
            raise ToolFailure(
                f"{operation.strip()} is not an operation in Attio's API. Closest: "
                + (", ".join(o.name for o in close) or "none"),
                "unknown_operation",
            )
        refused = refusal(caller, found)
        if refused is not None:
            raise refused
        return OperationsFound(described=catalogue.describe(found))
    if not query.strip():
        raise ToolFailure("Give `query` (words) or `operation`.", "invalid_arguments")
    found = catalogue.search(query, limit, among=callable_operations(caller))
    return OperationsFound(matches=matches(found))


class AttioAnswer(BaseModel):
    operation: str
    answer: Any = Field(None, description="Attio's JSON answer")
    cut: str | None = Field(None, description="Set when the answer was too long to return whole")
    preview: Preview | None = Field(None, description="For a delete: nothing was sent yet")


def bounded(answer: dict) -> tuple[Any, str | None]:
    """Attio's answer, or as much of it as MAX_ANSWER_CHARS holds and what was left out:
    the first items of its `data` list that fit, else its JSON as text, cut."""
    text = json.dumps(answer, ensure_ascii=False)
    if len(text) <= MAX_ANSWER_CHARS:
        return answer, None
    data = answer.get("data")
    if isinstance(data, list):
        kept, size = [], len(text) - len(json.dumps(data, ensure_ascii=False))
        for item in data:
            size += len(json.dumps(item, ensure_ascii=False)) + 2
            if size > MAX_ANSWER_CHARS:
                break
            kept.append(item)
        shortened = {**answer, "data": kept}
        if kept and len(json.dumps(shortened, ensure_ascii=False)) <= MAX_ANSWER_CHARS:
            return shortened, (
                f"Only the first {len(kept)} of the {len(data)} items fit: ask for fewer (a "
                "smaller `limit`), then page on."
            )
    return text[:MAX_ANSWER_CHARS], (
        f"The answer was {len(text)} characters as JSON; it is shown as text, cut at "
        f"{MAX_ANSWER_CHARS}. Ask for less (fewer items or attributes)."
    )


def changes_schema(operation: Operation) -> bool:
    """A write to objects, attributes, options, statuses or lists (not records, entries)."""
    if operation.is_read:
        return False
    template = operation.template
    if template.startswith(RECORD_PATHS) or template.startswith("/v2/objects/records"):
        return False
    return template.startswith(("/v2/objects", "/v2/lists", "/v2/{target}/"))


def changed_ids(operation: Operation, path_params: dict, answer: dict) -> list[str]:
    """The records or list entries a write changed: from its path, or the one it made."""
    if operation.is_read or not operation.template.startswith(RECORD_PATHS):
        return []
    ids = [str(path_params[name]) for name in ID_PARAMETERS if name in path_params]
    data = answer.get("data")
    made = data.get("id") if isinstance(data, dict) else None
    if not ids and isinstance(made, dict):
        ids = [str(made[name]) for name in ID_PARAMETERS if made.get(name)]
    return ids


async def preview_unless_confirmed(
    caller: Caller, operation: Operation, values: dict[str, str], confirm: str | None
) -> Preview | None:
    """For the deletes that are confirmed first (their path parameters checked already):
    the preview, or None once confirmed."""
    parent, id_name = CONFIRMED[operation.name]
    confirmation = _confirm.check(
        caller, "attio_request", {"operation": operation.name, "path": values}, confirm
    )
    if parent == "object":
        reading = await _confirm.record_to_delete(caller, values[parent], values[id_name])
    else:
        reading = await _confirm.entry_to_remove(caller, values[parent], values[id_name])
    return confirmation.preview_unless_confirmed(reading)


Method = Annotated[
    Literal["GET", "POST", "PUT", "PATCH", "DELETE"], Field(description="HTTP method")
]


@tool(title="Call the Attio API", read_only=False, destructive=True)
async def attio_request(
    caller: Caller,
    method: Method,
    path: Annotated[
        str, Field(max_length=200, description="The template, e.g. `/v2/notes/{note_id}`")
    ],
    path_params: Annotated[dict[str, str] | None, Field(description="For {placeholders}")] = None,
    query: Annotated[
        dict[str, str | int | bool] | None, Field(description="Query parameters")
    ] = None,
    body: Annotated[dict[str, Any] | None, Field(description="JSON body")] = None,
    confirm: Confirm = None,
) -> AttioAnswer:
    """Call an Attio operation found with `find_attio_operation`; prefer a dedicated tool.
    Deleting a record or entry previews first: confirm with its fingerprint."""
    operation = catalogue.get(method, path)
    if operation is None:
        raise ToolFailure(
            f"{method} {path} is not an operation in Attio's API: give the path template as "
            "`find_attio_operation` lists it, with the values in `path_params`.",
            "unknown_operation",
        )
    # The audit row names the operation, never the values sent.
    caller.outcome.operation = operation.name
    refused = refusal(caller, operation)
    if refused is not None and refused.code in READ_ONLY_CODES:
        # The policy's words for a write tool called read-only; an OAuth client is also
        # answered 403 insufficient_scope, so it can ask the user for write access.
        raise ToolFailure(policy.read_only_refusal(caller, operation.name), refused.code)
    if refused is not None:
        raise refused
    if len(json.dumps([path_params, query, body])) > MAX_REQUEST_CHARS:
        raise ToolFailure(
            f"The request is longer than {MAX_REQUEST_CHARS} characters as JSON; send less "
            "at a time.",
            "too_large",
        )
    try:
        request = catalogue.validate(method, path, path_params, query, body)
    except RequestProblem as problem:
        raise ToolFailure(
            f"The request does not fit {operation.name}:\n"
            + "\n".join(f"- {line}" for line in problem.problems)
            + f'\n`find_attio_operation` with operation="{operation.name}" shows its shape.',
            problem.code,
        ) from None

    if operation.name in CONFIRMED:
        preview = await preview_unless_confirmed(caller, operation, path_params or {}, confirm)
        if preview is not None:
            return AttioAnswer(operation=operation.name, preview=preview)
    elif confirm is not None:
        raise ToolFailure(
            f"`confirm` is only for the deletes that preview first; {operation.name} is not "
            "one of them. Call it without `confirm`.",
            "invalid_arguments",
        )

    async def send(token: str) -> dict:
        return await attio.arequest(
            operation.method,
            request.path,
            token,
            params=request.query or None,
            json=request.body,
            read=operation.is_read,
        )

    try:
        answer = await call_attio(caller, send, write=not operation.is_read)
    finally:
        if changes_schema(operation):
            # Even a failed write may have changed something; the record tools must not
            # go on with the slugs and value shapes they had.
            forget_slugs(caller.connection.pk)
    caller.outcome.record_ids = changed_ids(operation, path_params or {}, answer)
    shown, cut = bounded(answer)
    return AttioAnswer(operation=operation.name, answer=shown, cut=cut)
