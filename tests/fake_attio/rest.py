"""The fake's Attio REST API v2: objects, attributes, records, lists and entries,
notes, tasks, workspace members, threads and comments.

``register(fake)`` adds one row per operation to the fake's routing table. Each
handler runs under the fake's lock, on the ``Store`` of the token's workspace,
after two checks: the token (401, see ``FakeAttio.require_token``) and the
scopes the operation's description in Attio's OpenAPI document lists as
"Required scopes" (403). Responses follow the document's shapes; the fake
checks its own answers against it in strict mode.

Errors use Attio's body ``{"status_code", "type", "code", "message"}``. Where the
document declares the error status for an operation, its ``code`` is limited
to what the document lists there (often a single code: creating a record may
only answer ``value_not_found``, updating one only ``missing_value``), so the
code a handler would prefer is replaced by the declared one when they differ.
The message always says what went wrong.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx

from . import spec
from .model import (
    Comment,
    Entry,
    ListDef,
    Member,
    Note,
    ObjectDef,
    Record,
    Store,
    Task,
    Thread,
    Values,
    _HasAttributes,
    iso,
)
from .values import (
    FilterProblem,
    ValueProblem,
    identity,
    matches,
    render,
    resolve_record,
    sort_items,
    write_values,
)

if TYPE_CHECKING:
    from .core import FakeAttio, RequestContext, TokenRecord

Problem = ValueProblem

# One row per operation: method, path template in Attio's document, endpoint name
# (as in ``fake.calls``). The handler is the RestApi method named like the
# endpoint, with "_" for "." (records.query -> RestApi.records_query).
_TABLE = """
GET     /v2/objects                                                 objects.list
GET     /v2/objects/{object}                                        objects.get
GET     /v2/{target}/{identifier}/attributes                        attributes.list
GET     /v2/{target}/{identifier}/attributes/{attribute}            attributes.get
GET     /v2/{target}/{identifier}/attributes/{attribute}/options    options.list
GET     /v2/{target}/{identifier}/attributes/{attribute}/statuses   statuses.list
POST    /v2/objects/{object}/records/query                          records.query
POST    /v2/objects/{object}/records                                records.create
PUT     /v2/objects/{object}/records                                records.assert
GET     /v2/objects/{object}/records/{record_id}                    records.get
PATCH   /v2/objects/{object}/records/{record_id}                    records.update
PUT     /v2/objects/{object}/records/{record_id}                    records.overwrite
DELETE  /v2/objects/{object}/records/{record_id}                    records.delete
GET     /v2/objects/{object}/records/{record_id}/entries            records.entries
POST    /v2/objects/records/search                                  records.search
GET     /v2/lists                                                   lists.list
GET     /v2/lists/{list}                                            lists.get
POST    /v2/lists/{list}/entries/query                              entries.query
POST    /v2/lists/{list}/entries                                    entries.create
PUT     /v2/lists/{list}/entries                                    entries.assert
GET     /v2/lists/{list}/entries/{entry_id}                         entries.get
PATCH   /v2/lists/{list}/entries/{entry_id}                         entries.update
PUT     /v2/lists/{list}/entries/{entry_id}                         entries.overwrite
DELETE  /v2/lists/{list}/entries/{entry_id}                         entries.delete
GET     /v2/workspace_members                                       members.list
GET     /v2/workspace_members/{workspace_member_id}                 members.get
GET     /v2/notes                                                   notes.list
POST    /v2/notes                                                   notes.create
GET     /v2/notes/{note_id}                                         notes.get
DELETE  /v2/notes/{note_id}                                         notes.delete
GET     /v2/tasks                                                   tasks.list
POST    /v2/tasks                                                   tasks.create
GET     /v2/tasks/{task_id}                                         tasks.get
PATCH   /v2/tasks/{task_id}                                         tasks.update
DELETE  /v2/tasks/{task_id}                                         tasks.delete
GET     /v2/threads                                                 threads.list
GET     /v2/threads/{thread_id}                                     threads.get
POST    /v2/comments                                                comments.create
GET     /v2/comments/{comment_id}                                   comments.get
DELETE  /v2/comments/{comment_id}                                   comments.delete
"""
ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    (method, template, endpoint)
    for method, template, endpoint in (line.split() for line in _TABLE.strip().splitlines())
)

# Scopes some operations need only for one kind of parent (their descriptions
# say so in prose, outside the "Required scopes" line).
RECORD_READ = ("object_configuration:read", "record_permission:read")
ENTRY_READ = ("list_configuration:read", "list_entry:read")


# --- what the document says about each operation ------------------------------


@functools.cache
def required_scopes() -> dict[tuple[str, str], tuple[str, ...]]:
    """(METHOD, template) -> the scopes in the operation's "Required scopes" line."""
    table = {}
    for template, item in spec.load_spec()["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            found = re.search(r"Required scopes:([^\n]*)", operation.get("description", ""))
            scopes = re.findall(r"`([a-z_]+:read(?:-write)?)`", found.group(1) if found else "")
            table[(method.upper(), template)] = tuple(scopes)
    return table


@functools.cache
def _declared_error(method: str, template: str, status: int) -> dict[str, Any] | None:
    operation = spec.load_spec()["paths"][template][method.lower()]
    response = operation.get("responses", {}).get(str(status))
    if response is None:
        return None
    return response["content"]["application/json"]["schema"]


def declared_codes(method: str, template: str, status: int) -> tuple[str, ...] | None:
    """The error codes the document allows for a status, or None if undeclared."""
    schema = _declared_error(method, template, status)
    if schema is None:
        return None
    return tuple(schema["properties"]["code"].get("enum", ())) or None


def error_response(method: str, template: str, problem: ValueProblem) -> httpx.Response:
    """Attio's error body for a problem, fitted to what the operation declares."""
    from .core import attio_error

    code = problem.code
    allowed = declared_codes(method, template, problem.status)
    if allowed and code not in allowed:
        code = allowed[0]
    response = attio_error(problem.status, problem.message, code=code)
    schema = _declared_error(method, template, problem.status) or {}
    if "statusCode" in schema.get("required", ()):
        # POST /v2/comments declares its 400 with "statusCode" instead of
        # "status_code": send both, so the body fits the document and the usual shape.
        body = {**response.json(), "statusCode": problem.status}
        response = httpx.Response(problem.status, json=body)
    return response


def has_scope(granted: Iterable[str], needed: str) -> bool:
    """``x:read-write`` satisfies ``x:read``."""
    granted = set(granted)
    if needed in granted:
        return True
    name, _, level = needed.partition(":")
    return level == "read" and f"{name}:read-write" in granted


def missing_scopes(granted: str, needed: Iterable[str]) -> list[str]:
    have = granted.split()
    return [scope for scope in needed if not has_scope(have, scope)]


def _path_regex(template: str) -> str:
    def group(found: re.Match[str]) -> str:
        name = found.group(1)
        return f"(?P<{name}>objects|lists)" if name == "target" else f"(?P<{name}>[^/]+)"

    return re.sub(r"\{(\w+)\}", group, template)


def register(fake: FakeAttio) -> None:
    """Add every REST route to ``fake``'s routing table."""
    api = RestApi(fake)
    for method, template, endpoint in ROUTES:
        handler = api.route(method, template, getattr(api, endpoint.replace(".", "_")))
        fake.add_route(method, _path_regex(template), endpoint, handler)


# --- one request ------------------------------------------------------------------


@dataclass
class Req:
    """An authenticated request, as a handler sees it."""

    ctx: RequestContext
    token: TokenRecord
    store: Store
    now: str  # the fake's clock, in Attio's format

    @property
    def path(self) -> dict[str, str]:
        return self.ctx.path_params

    @property
    def query(self) -> dict[str, str]:
        return self.ctx.query

    @property
    def body(self) -> dict[str, Any]:
        body = self.ctx.json
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise Problem("The request body must be a JSON object.")
        return body

    @property
    def data(self) -> dict[str, Any]:
        data = self.body.get("data")
        if not isinstance(data, dict):
            raise Problem('The request body needs a "data" object.')
        return data

    @property
    def actor(self) -> dict[str, str]:
        """The actor API writes are attributed to: the token (an api-token actor)."""
        return {"type": "api-token", "id": self.token.grant_id}

    def require(self, *scopes: str) -> None:
        missing = missing_scopes(self.token.scopes, scopes)
        if missing:
            raise missing_scope_problem(missing)

    def int_param(self, name: str, default: int, maximum: int | None = None) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise Problem(f"{name} must be an integer, got {raw!r}.") from None
        if value < 0:
            raise Problem(f"{name} must not be negative.")
        return min(value, maximum) if maximum is not None else value


def missing_scope_problem(missing: list[str]) -> ValueProblem:
    return Problem(
        "The access token is missing the scope(s) this operation requires: "
        + ", ".join(missing)
        + ".",
        code="missing_scope",
        status=403,
    )


def not_found(what: str, key: str) -> ValueProblem:
    return Problem(f'{what} "{key}" was not found.', code="not_found", status=404)


def _new_id() -> str:
    return str(uuid.uuid4())


def _ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data})


def _deleted() -> httpx.Response:
    return httpx.Response(200, json={})


def _page(items: list[Any], limit: int, offset: int) -> list[Any]:
    return items[offset : offset + limit]


def _body_number(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FilterProblem(f"{name} must be a non-negative number.")
    return int(value)


def _timestamp(value: Any, name: str) -> str:
    """An ISO 8601 date or date-time -> Attio's timestamp format."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
            else:
                # Attio writes nanoseconds; Python parses at most microseconds.
                text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
                moment = dt.datetime.fromisoformat(text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=dt.UTC)
            return iso(moment.timestamp())
        except ValueError:
            pass
    raise Problem(f"{name} must be an ISO 8601 timestamp, got {value!r}.")


def _markdown_to_text(markdown: str) -> str:
    text = re.sub(r"^\s{0,3}#{1,6}\s*", "", markdown, flags=re.M)
    text = re.sub(r"^\s*[-*+]\s+", "", text, flags=re.M)
    text = re.sub(r"(\*\*|__|\*|_|`)", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"\n{2,}", "\n", text).strip()


# --- the handlers -----------------------------------------------------------------


class RestApi:
    def __init__(self, fake: FakeAttio) -> None:
        self.fake = fake

    def route(
        self, method: str, template: str, handler: Callable[[Req], httpx.Response]
    ) -> Callable[[RequestContext], httpx.Response]:
        needed = required_scopes().get((method, template), ())

        def run(ctx: RequestContext) -> httpx.Response:
            token = self.fake.require_token(ctx)  # raises a 401 reply
            store = self.fake.store(token.workspace_id)
            try:
                missing = missing_scopes(token.scopes, needed)
                if missing:
                    raise missing_scope_problem(missing)
                return handler(Req(ctx, token, store, iso(self.fake.now())))
            except ValueProblem as problem:
                return error_response(method, template, problem)

        return run

    # --- look-ups that answer 404 --------------------------------------------------

    def _object(self, req: Req, key: str) -> ObjectDef:
        obj = req.store.object(key)
        if obj is None:
            raise not_found("Object with slug/ID", key)
        return obj

    def _list(self, req: Req, key: str) -> ListDef:
        found = req.store.list(key)
        if found is None:
            raise not_found("List with slug/ID", key)
        return found

    def _parent(self, req: Req) -> ObjectDef | ListDef:
        target, key = req.path["target"], req.path["identifier"]
        if target == "objects":
            return self._object(req, key)
        return self._list(req, key)

    def _attribute(self, req: Req):
        parent = self._parent(req)
        attr = parent.attribute(req.path["attribute"])
        if attr is None:
            raise not_found("Attribute with slug/ID", req.path["attribute"])
        return parent, attr

    def _record(self, req: Req, obj: ObjectDef, record_id: str) -> Record:
        record = req.store.record(obj.api_slug, record_id)
        if record is None:
            raise not_found("Record with ID", record_id)
        return record

    def _entry(self, req: Req, lst: ListDef, entry_id: str) -> Entry:
        entry = req.store.entries.get(entry_id)
        if entry is None or entry.list_slug != lst.api_slug:
            raise not_found("Entry with ID", entry_id)
        return entry

    # --- JSON shapes --------------------------------------------------------------------

    def object_json(self, store: Store, obj: ObjectDef) -> dict[str, Any]:
        return {
            "id": {"workspace_id": store.workspace_id, "object_id": obj.id},
            "api_slug": obj.api_slug,
            "singular_noun": obj.singular_noun,
            "plural_noun": obj.plural_noun,
            "created_at": obj.created_at,
        }

    def attribute_json(self, store: Store, parent: _HasAttributes, attr) -> dict:
        allowed = None
        if attr.type == "record-reference":
            allowed = [
                store.objects[slug].id
                for slug in (attr.allowed_objects or store.objects)
                if slug in store.objects
            ]
        return {
            "id": {
                "workspace_id": store.workspace_id,
                "object_id": parent.id,
                "attribute_id": attr.id,
            },
            "title": attr.title,
            "description": attr.description,
            "api_slug": attr.api_slug,
            "type": attr.type,
            "is_system_attribute": attr.is_system_attribute,
            "is_writable": attr.is_writable,
            "is_required": attr.is_required,
            "is_unique": attr.is_unique,
            "is_multiselect": attr.is_multiselect,
            "is_default_value_enabled": False,
            "is_archived": attr.is_archived,
            "default_value": None,
            "relationship": None,
            "created_at": attr.created_at,
            "config": {
                # Attio sends nulls here for non-currency attributes, but the
                # document's enums leave null out (type ["string", "null"] with an
                # enum of strings), so the fake sends USD/symbol everywhere.
                "currency": {
                    "default_currency_code": attr.default_currency_code or "USD",
                    "display_type": "symbol",
                },
                "record_reference": {"allowed_object_ids": allowed},
            },
        }

    def _option_id(self, store: Store, parent: _HasAttributes, attr, **extra: str):
        return {
            "workspace_id": store.workspace_id,
            "object_id": parent.id,
            "attribute_id": attr.id,
            **extra,
        }

    def record_json(self, store: Store, record: Record) -> dict[str, Any]:
        obj = store.objects[record.object_slug]
        noun = obj.singular_noun.lower() or obj.api_slug
        return {
            "id": {
                "workspace_id": store.workspace_id,
                "object_id": obj.id,
                "record_id": record.id,
            },
            "created_at": record.created_at,
            "web_url": f"https://app.attio.com/{store.workspace_slug}/{noun}/{record.id}",
            "values": render(record.values, obj, store.workspace_id),
        }

    def list_json(self, store: Store, lst: ListDef) -> dict[str, Any]:
        return {
            "id": {"workspace_id": store.workspace_id, "list_id": lst.id},
            "api_slug": lst.api_slug,
            "name": lst.name,
            "parent_object": list(lst.parent_object),
            "workspace_access": lst.workspace_access,
            "workspace_member_access": [
                {"workspace_member_id": member_id, "level": level}
                for member_id, level in lst.member_access
            ],
            "created_by_actor": dict(lst.created_by_actor),
            "created_at": lst.created_at,
        }

    def entry_json(self, store: Store, entry: Entry) -> dict[str, Any]:
        lst = store.lists[entry.list_slug]
        return {
            "id": {
                "workspace_id": store.workspace_id,
                "list_id": lst.id,
                "entry_id": entry.id,
            },
            "parent_record_id": entry.parent_record_id,
            "parent_object": entry.parent_object,
            "created_at": entry.created_at,
            "entry_values": render(entry.values, lst, store.workspace_id),
        }

    def member_json(self, store: Store, member: Member) -> dict[str, Any]:
        return {
            "id": {"workspace_id": store.workspace_id, "workspace_member_id": member.id},
            "first_name": member.first_name,
            "last_name": member.last_name,
            "avatar_url": member.avatar_url,
            "email_address": member.email_address,
            "created_at": member.created_at,
            "access_level": member.access_level,
        }

    def note_json(self, store: Store, note: Note) -> dict[str, Any]:
        return {
            "id": {"workspace_id": store.workspace_id, "note_id": note.id},
            "parent_object": note.parent_object,
            "parent_record_id": note.parent_record_id,
            "title": note.title,
            "meeting_id": note.meeting_id,
            "content_plaintext": note.content_plaintext,
            "content_markdown": note.content_markdown,
            "tags": [],
            "created_by_actor": dict(note.created_by_actor),
            "created_at": note.created_at,
        }

    def task_json(self, store: Store, task: Task) -> dict[str, Any]:
        return {
            "id": {"workspace_id": store.workspace_id, "task_id": task.id},
            "content_plaintext": task.content_plaintext,
            "deadline_at": task.deadline_at,
            "is_completed": task.is_completed,
            "linked_records": [
                {
                    "target_object_id": store.objects[slug].id,
                    "target_record_id": record_id,
                }
                for slug, record_id in task.linked_records
            ],
            "assignees": [
                {"referenced_actor_type": "workspace-member", "referenced_actor_id": m}
                for m in task.assignees
            ],
            "created_by_actor": dict(task.created_by_actor),
            "created_at": task.created_at,
        }

    def comment_json(self, store: Store, comment: Comment) -> dict[str, Any]:
        thread = store.threads[comment.thread_id]
        entry = None
        if thread.entry_id is not None and thread.list_slug is not None:
            entry = {
                "entry_id": thread.entry_id,
                "list_id": store.lists[thread.list_slug].id,
            }
        return {
            "id": {"workspace_id": store.workspace_id, "comment_id": comment.id},
            "thread_id": comment.thread_id,
            "content_plaintext": comment.content_plaintext,
            "entry": entry,
            "record": {
                "record_id": thread.record_id,
                "object_id": store.objects[thread.object_slug].id,
            },
            "resolved_at": None,
            # The document's actor object marks id/type "nullable" (OpenAPI 3.0),
            # which JSON Schema 2020-12 ignores, so nulls would not validate: an
            # unresolved comment's resolved_by is sent as an empty object.
            "resolved_by": {},
            "created_at": comment.created_at,
            "author": {"type": "workspace-member", "id": comment.author_id},
        }

    def thread_json(self, store: Store, thread: Thread) -> dict[str, Any]:
        return {
            "id": {"workspace_id": store.workspace_id, "thread_id": thread.id},
            "comments": [self.comment_json(store, store.comments[c]) for c in thread.comment_ids],
            "created_at": thread.created_at,
        }

    # --- objects and attributes ---------------------------------------------------------

    def objects_list(self, req: Req) -> httpx.Response:
        return _ok([self.object_json(req.store, o) for o in req.store.objects.values()])

    def objects_get(self, req: Req) -> httpx.Response:
        return _ok(self.object_json(req.store, self._object(req, req.path["object"])))

    def attributes_list(self, req: Req) -> httpx.Response:
        parent = self._parent(req)
        attrs = [
            a
            for a in parent.attributes.values()
            if not a.is_archived or req.query.get("show_archived") == "true"
        ]
        limit = req.int_param("limit", len(attrs))
        attrs = _page(attrs, limit, req.int_param("offset", 0))
        return _ok([self.attribute_json(req.store, parent, a) for a in attrs])

    def attributes_get(self, req: Req) -> httpx.Response:
        parent, attr = self._attribute(req)
        return _ok(self.attribute_json(req.store, parent, attr))

    def options_list(self, req: Req) -> httpx.Response:
        parent, attr = self._attribute(req)
        if attr.type != "select":
            raise not_found("Select attribute with slug/ID", req.path["attribute"])
        archived = req.query.get("show_archived") == "true"
        return _ok(
            [
                {
                    "id": self._option_id(req.store, parent, attr, option_id=o.id),
                    "title": o.title,
                    "is_archived": o.is_archived,
                }
                for o in attr.options
                if archived or not o.is_archived
            ]
        )

    def statuses_list(self, req: Req) -> httpx.Response:
        parent, attr = self._attribute(req)
        if attr.type != "status":
            raise not_found("Status attribute with slug/ID", req.path["attribute"])
        archived = req.query.get("show_archived") == "true"
        return _ok(
            [
                {
                    "id": self._option_id(req.store, parent, attr, status_id=s.id),
                    "title": s.title,
                    "is_archived": s.is_archived,
                    "celebration_enabled": s.celebration_enabled,
                    "target_time_in_status": s.target_time_in_status,
                }
                for s in attr.statuses
                if archived or not s.is_archived
            ]
        )

    # --- records -------------------------------------------------------------------------

    def _records_of(self, store: Store, obj: ObjectDef) -> list[Record]:
        return [r for r in store.records.values() if r.object_slug == obj.api_slug]

    def _siblings(self, store: Store, obj: ObjectDef, but: str | None) -> list[Values]:
        return [r.values for r in self._records_of(store, obj) if r.id != but]

    def records_query(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        body = req.body
        records = self._records_of(req.store, obj)
        flt = body.get("filter")

        def special(record: Record) -> dict[str, str]:
            # Filterable and sortable, though not in "values": the document gives
            # timestamp values a date-only format, so created_at is left out there.
            return {"record_id": record.id, "created_at": record.created_at}

        if flt:
            records = [r for r in records if matches(flt, r.values, obj, special(r))]
        records = sort_items(records, body.get("sorts"), obj, lambda r: r.values, special)
        page = _page(records, _body_number(body, "limit", 500), _body_number(body, "offset", 0))
        return _ok([self.record_json(req.store, r) for r in page])

    def records_get(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        record = self._record(req, obj, req.path["record_id"])
        return _ok(self.record_json(req.store, record))

    def _values_in(self, req: Req) -> dict[str, Any]:
        values = req.data.get("values")
        if not isinstance(values, dict):
            raise Problem('The request body needs "data": {"values": {...}}.')
        return values

    def _create_record(self, req: Req, obj: ObjectDef, raw: dict[str, Any]) -> httpx.Response:
        values = write_values(
            req.store,
            obj,
            raw,
            mode="create",
            existing=None,
            actor=req.actor,
            at=req.now,
            siblings=self._siblings(req.store, obj, None),
        )
        if "created_by" in obj.attributes:
            values["created_by"] = [
                {
                    "active_from": req.now,
                    "active_until": None,
                    "created_by_actor": req.actor,
                    "attribute_type": "actor-reference",
                    "referenced_actor_type": req.actor["type"],
                    "referenced_actor_id": req.actor["id"],
                }
            ]
        record = Record(_new_id(), obj.api_slug, req.now, values)
        req.store.records[record.id] = record
        return _ok(self.record_json(req.store, record))

    def _update_record(
        self, req: Req, obj: ObjectDef, record: Record, raw: dict, mode: Any, **kw: Any
    ) -> httpx.Response:
        record.values = write_values(
            req.store,
            obj,
            raw,
            mode=mode,
            existing=record.values,
            actor=req.actor,
            at=req.now,
            siblings=self._siblings(req.store, obj, record.id),
            **kw,
        )
        return _ok(self.record_json(req.store, record))

    def records_create(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        return self._create_record(req, obj, self._values_in(req))

    def records_update(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        record = self._record(req, obj, req.path["record_id"])
        return self._update_record(req, obj, record, self._values_in(req), "append")

    def records_overwrite(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        record = self._record(req, obj, req.path["record_id"])
        return self._update_record(req, obj, record, self._values_in(req), "overwrite")

    def records_assert(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        key = req.query.get("matching_attribute", "")
        attr = obj.attribute(key)
        if attr is None:
            raise Problem(f'Cannot find attribute with slug/ID "{key}".', code="value_not_found")
        if not attr.is_unique:
            raise Problem(
                f'The matching attribute "{attr.api_slug}" is not unique; assert '
                "needs a unique attribute.",
            )
        raw = self._values_in(req)
        given = next((raw[k] for k in (attr.api_slug, attr.id) if k in raw), None)
        if not given:
            raise Problem(
                f'The request body has no value for the matching attribute "{key}".',
                code="missing_value",
            )
        # Coerce the given values the way a write would, to compare like with like.
        probe = write_values(
            req.store,
            _only(obj, attr.api_slug),
            {attr.api_slug: given},
            mode="create",
            existing=None,
            actor=req.actor,
            at=req.now,
        )
        wanted = {identity(attr, v) for v in probe[attr.api_slug]}
        found = [
            r
            for r in self._records_of(req.store, obj)
            if wanted & {identity(attr, v) for v in r.values.get(attr.api_slug, [])}
        ]
        if len(found) > 1:
            raise Problem(
                f'{len(found)} records match on "{attr.api_slug}"; assert needs at most one.',
                code="multiple_match_results",
            )
        if not found:
            return self._create_record(req, obj, raw)
        return self._update_record(req, obj, found[0], raw, "assert", matching_slug=attr.api_slug)

    def records_delete(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        record = self._record(req, obj, req.path["record_id"])
        req.store.delete_record(record.id)
        return _deleted()

    def records_entries(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        record = self._record(req, obj, req.path["record_id"])
        entries = [e for e in req.store.entries.values() if e.parent_record_id == record.id]
        limit = req.int_param("limit", 100, maximum=1000)
        page = _page(entries, limit, req.int_param("offset", 0))
        return _ok(
            [
                {
                    "list_id": req.store.lists[e.list_slug].id,
                    "list_api_slug": e.list_slug,
                    "entry_id": e.id,
                    "created_at": e.created_at,
                }
                for e in page
            ]
        )

    def records_search(self, req: Req) -> httpx.Response:
        body = req.body
        objects = []
        for key in body.get("objects", []):
            obj = req.store.object(key)
            if obj is None:
                raise Problem(f'Cannot find object with slug/ID "{key}".', code="value_not_found")
            objects.append(obj)
        request_as = body.get("request_as") or {"type": "workspace"}
        if request_as.get("type") == "workspace-member":
            who = request_as.get("workspace_member_id") or request_as.get("email_address", "")
            if req.store.member_by_id_or_email(who) is None:
                raise Problem(f'Cannot find workspace member "{who}".', code="value_not_found")
        query = str(body.get("query", "")).strip().casefold()
        limit = int(body.get("limit", 25))
        found = []
        for obj in objects:
            for record in self._records_of(req.store, obj):
                item = _search_item(req.store, obj, record)
                texts = [item["record_text"]]
                for name in ("email_addresses", "phone_numbers", "domains"):
                    texts += item.get(name, [])
                if not query or any(query in t.casefold() for t in texts):
                    found.append(item)
        return _ok(found[:limit])

    # --- lists and entries ---------------------------------------------------------------

    def lists_list(self, req: Req) -> httpx.Response:
        return _ok([self.list_json(req.store, x) for x in req.store.lists.values()])

    def lists_get(self, req: Req) -> httpx.Response:
        return _ok(self.list_json(req.store, self._list(req, req.path["list"])))

    def entries_query(self, req: Req) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        body = req.body
        entries = req.store.entries_of(lst.api_slug)
        flt = body.get("filter")

        def special(entry: Entry) -> dict[str, str]:
            return {
                "entry_id": entry.id,
                "parent_record_id": entry.parent_record_id,
                "created_at": entry.created_at,
            }

        if flt:
            entries = [e for e in entries if matches(flt, e.values, lst, special(e))]
        entries = sort_items(entries, body.get("sorts"), lst, lambda e: e.values, special)
        page = _page(entries, _body_number(body, "limit", 500), _body_number(body, "offset", 0))
        return _ok([self.entry_json(req.store, e) for e in page])

    def _entry_values_in(self, req: Req) -> dict[str, Any]:
        values = req.data.get("entry_values")
        if not isinstance(values, dict):
            raise Problem('The request body needs "data": {"entry_values": {...}}.')
        return values

    def _entry_parent(self, req: Req, lst: ListDef) -> tuple[str, str]:
        data = req.data
        slug, record_id = resolve_record(
            req.store,
            str(data.get("parent_object", "")),
            {"target_record_id": data.get("parent_record_id")},
            where="parent_record_id",
        )
        if slug not in lst.parent_object:
            raise Problem(
                f'List "{lst.api_slug}" holds records of '
                f'{", ".join(lst.parent_object)}, not of "{slug}".',
                code="value_not_found",
            )
        return slug, record_id

    def _write_entry(
        self, req: Req, lst: ListDef, entry: Entry | None, raw: dict, mode: Any
    ) -> Values:
        siblings = [
            e.values
            for e in req.store.entries_of(lst.api_slug)
            if entry is None or e.id != entry.id
        ]
        return write_values(
            req.store,
            lst,
            raw,
            mode=mode,
            existing=entry.values if entry else None,
            actor=req.actor,
            at=req.now,
            siblings=siblings,
        )

    def _create_entry(
        self, req: Req, lst: ListDef, parent: tuple[str, str], raw: dict
    ) -> httpx.Response:
        values = self._write_entry(req, lst, None, raw, "create")
        entry = Entry(_new_id(), lst.api_slug, parent[0], parent[1], req.now, values)
        req.store.entries[entry.id] = entry
        return _ok(self.entry_json(req.store, entry))

    def entries_create(self, req: Req) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        parent = self._entry_parent(req, lst)
        return self._create_entry(req, lst, parent, self._entry_values_in(req))

    def entries_assert(self, req: Req) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        parent = self._entry_parent(req, lst)
        raw = self._entry_values_in(req)
        found = req.store.entries_of(lst.api_slug, parent[1])
        if len(found) > 1:
            raise Problem(
                f'Record "{parent[1]}" has {len(found)} entries in list "{lst.api_slug}".',
                code="multiple_match_results",
            )
        if not found:
            return self._create_entry(req, lst, parent, raw)
        found[0].values = self._write_entry(req, lst, found[0], raw, "overwrite")
        return _ok(self.entry_json(req.store, found[0]))

    def entries_get(self, req: Req) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        return _ok(self.entry_json(req.store, self._entry(req, lst, req.path["entry_id"])))

    def _update_entry(self, req: Req, mode: str) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        entry = self._entry(req, lst, req.path["entry_id"])
        entry.values = self._write_entry(req, lst, entry, self._entry_values_in(req), mode)
        return _ok(self.entry_json(req.store, entry))

    def entries_update(self, req: Req) -> httpx.Response:
        return self._update_entry(req, "append")

    def entries_overwrite(self, req: Req) -> httpx.Response:
        return self._update_entry(req, "overwrite")

    def entries_delete(self, req: Req) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        entry = self._entry(req, lst, req.path["entry_id"])
        req.store.delete_entry(entry.id)
        return _deleted()

    # --- workspace members ------------------------------------------------------------

    def members_list(self, req: Req) -> httpx.Response:
        return _ok([self.member_json(req.store, m) for m in req.store.members.values()])

    def members_get(self, req: Req) -> httpx.Response:
        key = req.path["workspace_member_id"]
        member = req.store.members.get(key)
        if member is None:
            raise not_found("Workspace member with ID", key)
        return _ok(self.member_json(req.store, member))

    # --- notes ------------------------------------------------------------------------

    def notes_list(self, req: Req) -> httpx.Response:
        notes = list(req.store.notes.values())
        parent_object = req.query.get("parent_object")
        if parent_object:
            slug = self._object(req, parent_object).api_slug
            notes = [n for n in notes if n.parent_object == slug]
        parent_record_id = req.query.get("parent_record_id")
        if parent_record_id:
            notes = [n for n in notes if n.parent_record_id == parent_record_id]
        limit = req.int_param("limit", 10, maximum=50)
        page = _page(notes, limit, req.int_param("offset", 0))
        return _ok([self.note_json(req.store, n) for n in page])

    def _note(self, req: Req) -> Note:
        note = req.store.notes.get(req.path["note_id"])
        if note is None:
            raise not_found("Note with ID", req.path["note_id"])
        return note

    def notes_get(self, req: Req) -> httpx.Response:
        return _ok(self.note_json(req.store, self._note(req)))

    def notes_create(self, req: Req) -> httpx.Response:
        data = req.data
        obj = self._object(req, str(data.get("parent_object", "")))
        record = self._record(req, obj, str(data.get("parent_record_id", "")))
        content = data.get("content")
        if not isinstance(content, str) or not isinstance(data.get("title"), str):
            raise Problem("A note needs a string title and content.")
        if data.get("format") == "markdown":
            markdown, plaintext = content, _markdown_to_text(content)
        else:
            markdown, plaintext = content, content
        created_at = data.get("created_at")
        note = Note(
            id=_new_id(),
            parent_object=obj.api_slug,
            parent_record_id=record.id,
            title=data["title"],
            content_plaintext=plaintext,
            content_markdown=markdown,
            created_by_actor=req.actor,
            created_at=_timestamp(created_at, "created_at") if created_at else req.now,
            meeting_id=data.get("meeting_id"),
        )
        req.store.notes[note.id] = note
        return _ok(self.note_json(req.store, note))

    def notes_delete(self, req: Req) -> httpx.Response:
        del req.store.notes[self._note(req).id]
        return _deleted()

    # --- tasks ------------------------------------------------------------------------

    def tasks_list(self, req: Req) -> httpx.Response:
        tasks = list(req.store.tasks.values())
        linked_object = req.query.get("linked_object")
        linked_record_id = req.query.get("linked_record_id")
        if linked_record_id and not linked_object:
            raise Problem("linked_record_id must be passed with linked_object.")
        if linked_object:
            slug = self._object(req, linked_object).api_slug
            tasks = [
                t
                for t in tasks
                if any(
                    s == slug and (not linked_record_id or r == linked_record_id)
                    for s, r in t.linked_records
                )
            ]
        if "assignee" in req.query:
            who = req.query["assignee"]
            if who in ("", "null"):
                tasks = [t for t in tasks if not t.assignees]
            else:
                member = req.store.member_by_id_or_email(who)
                member_id = member.id if member else None
                tasks = [t for t in tasks if member_id in t.assignees]
        if "is_completed" in req.query:
            done = req.query["is_completed"] == "true"
            tasks = [t for t in tasks if t.is_completed == done]
        tasks.sort(key=lambda t: t.created_at, reverse=req.query.get("sort") == "created_at:desc")
        limit = req.int_param("limit", 500)
        page = _page(tasks, limit, req.int_param("offset", 0))
        return _ok([self.task_json(req.store, t) for t in page])

    def _task(self, req: Req) -> Task:
        task = req.store.tasks.get(req.path["task_id"])
        if task is None:
            raise not_found("Task with ID", req.path["task_id"])
        return task

    def _linked_records(self, req: Req, items: Any) -> list[tuple[str, str]]:
        if not isinstance(items, list):
            raise Problem("linked_records must be a list.")
        linked = []
        for item in items:
            if not isinstance(item, dict) or "target_object" not in item:
                raise Problem(f"Invalid linked record {item!r}.")
            try:
                linked.append(
                    resolve_record(req.store, item["target_object"], item, where="linked_records")
                )
            except ValueProblem as problem:
                if problem.code != "value_not_found":
                    raise
                raise Problem(problem.message, code="not_found", status=404) from None
        return linked

    def _assignees(self, req: Req, items: Any) -> list[str]:
        if not isinstance(items, list):
            raise Problem("assignees must be a list.")
        found = []
        for item in items:
            key = None
            if isinstance(item, dict):
                key = item.get("referenced_actor_id") or item.get("workspace_member_email_address")
            member = req.store.member_by_id_or_email(key) if key else None
            if member is None:
                raise not_found("Workspace member", str(key or item))
            if member.id not in found:
                found.append(member.id)
        return found

    def tasks_get(self, req: Req) -> httpx.Response:
        return _ok(self.task_json(req.store, self._task(req)))

    def tasks_create(self, req: Req) -> httpx.Response:
        data = req.data
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            raise Problem("A task needs non-empty content.")
        deadline = data.get("deadline_at")
        task = Task(
            id=_new_id(),
            content_plaintext=content,
            deadline_at=_timestamp(deadline, "deadline_at") if deadline else None,
            is_completed=bool(data.get("is_completed", False)),
            linked_records=self._linked_records(req, data.get("linked_records", [])),
            assignees=self._assignees(req, data.get("assignees", [])),
            created_by_actor=req.actor,
            created_at=req.now,
        )
        req.store.tasks[task.id] = task
        return _ok(self.task_json(req.store, task))

    def tasks_update(self, req: Req) -> httpx.Response:
        task = self._task(req)
        data = req.data
        # Validate everything before changing anything.
        changes: dict[str, Any] = {}
        if "deadline_at" in data:
            deadline = data["deadline_at"]
            changes["deadline_at"] = _timestamp(deadline, "deadline_at") if deadline else None
        if "is_completed" in data:
            if not isinstance(data["is_completed"], bool):
                raise Problem("is_completed must be true or false.")
            changes["is_completed"] = data["is_completed"]
        if "linked_records" in data:
            changes["linked_records"] = self._linked_records(req, data["linked_records"])
        if "assignees" in data:
            changes["assignees"] = self._assignees(req, data["assignees"])
        unknown = set(data) - {"deadline_at", "is_completed", "linked_records", "assignees"}
        if unknown:
            raise Problem(
                "Only deadline_at, is_completed, linked_records and assignees can be "
                f"updated, not {', '.join(sorted(unknown))}."
            )
        for name, value in changes.items():
            setattr(task, name, value)
        return _ok(self.task_json(req.store, task))

    def tasks_delete(self, req: Req) -> httpx.Response:
        del req.store.tasks[self._task(req).id]
        return _deleted()

    # --- threads and comments -------------------------------------------------------------

    def threads_list(self, req: Req) -> httpx.Response:
        q = req.query
        threads = list(req.store.threads.values())
        if bool(q.get("record_id")) != bool(q.get("object")):
            raise Problem("record_id and object must be passed together.")
        if bool(q.get("entry_id")) != bool(q.get("list")):
            raise Problem("entry_id and list must be passed together.")
        if q.get("record_id"):
            req.require(*RECORD_READ)
            slug = self._object(req, q["object"]).api_slug
            threads = [
                t
                for t in threads
                if t.object_slug == slug and t.record_id == q["record_id"] and t.entry_id is None
            ]
        if q.get("entry_id"):
            req.require(*ENTRY_READ)
            slug = self._list(req, q["list"]).api_slug
            threads = [t for t in threads if t.list_slug == slug and t.entry_id == q["entry_id"]]
        limit = req.int_param("limit", 10, maximum=50)
        page = _page(threads, limit, req.int_param("offset", 0))
        return _ok([self.thread_json(req.store, t) for t in page])

    def threads_get(self, req: Req) -> httpx.Response:
        thread = req.store.threads.get(req.path["thread_id"])
        if thread is None:
            raise not_found("Thread with ID", req.path["thread_id"])
        return _ok(self.thread_json(req.store, thread))

    def comments_create(self, req: Req) -> httpx.Response:
        data = req.data
        store = req.store
        content = data.get("content")
        if not isinstance(content, str):
            raise Problem("A comment needs string content.")
        author = data.get("author") or {}
        member = store.members.get(str(author.get("id")))
        if author.get("type") != "workspace-member" or member is None:
            raise Problem(
                f'Cannot find workspace member "{author.get("id")}" (author).',
                code="value_not_found",
            )
        created_at = data.get("created_at")
        at = _timestamp(created_at, "created_at") if created_at else req.now
        if "thread_id" in data:
            thread = store.threads.get(str(data["thread_id"]))
            if thread is None:
                raise Problem(
                    "The referenced Thread could not be found, it might have been "
                    f'deleted (thread_id "{data["thread_id"]}").',
                    code="value_not_found",
                )
        elif "record" in data:
            req.require(*RECORD_READ)
            target = data["record"]
            slug, record_id = resolve_record(
                store,
                str(target.get("object", "")),
                {"target_record_id": target.get("record_id")},
                where="record",
            )
            thread = Thread(_new_id(), at, slug, record_id)
        elif "entry" in data:
            req.require(*ENTRY_READ)
            target = data["entry"]
            lst = store.list(str(target.get("list", "")))
            entry = store.entries.get(str(target.get("entry_id", "")))
            if lst is None or entry is None or entry.list_slug != lst.api_slug:
                raise Problem(
                    f"Cannot find entry {target.get('entry_id')!r} in list {target.get('list')!r}.",
                    code="value_not_found",
                )
            thread = Thread(
                _new_id(),
                at,
                entry.parent_object,
                entry.parent_record_id,
                list_slug=lst.api_slug,
                entry_id=entry.id,
            )
        else:
            raise Problem("A comment needs a thread_id, a record or an entry.")
        store.threads[thread.id] = thread
        comment = Comment(_new_id(), thread.id, content, member.id, at)
        store.comments[comment.id] = comment
        thread.comment_ids.append(comment.id)
        return _ok(self.comment_json(store, comment))

    def _comment(self, req: Req) -> Comment:
        comment = req.store.comments.get(req.path["comment_id"])
        if comment is None:
            raise not_found("Comment with ID", req.path["comment_id"])
        return comment

    def comments_get(self, req: Req) -> httpx.Response:
        return _ok(self.comment_json(req.store, self._comment(req)))

    def comments_delete(self, req: Req) -> httpx.Response:
        comment = self._comment(req)
        store = req.store
        thread = store.threads[comment.thread_id]
        if thread.comment_ids and thread.comment_ids[0] == comment.id:
            # Deleting the head of a thread deletes the whole thread.
            for comment_id in thread.comment_ids:
                store.comments.pop(comment_id, None)
            del store.threads[thread.id]
        else:
            thread.comment_ids.remove(comment.id)
            del store.comments[comment.id]
        return _deleted()


def _only(parent: _HasAttributes, slug: str) -> _HasAttributes:
    """One attribute of a parent, without its required and unique rules (to
    coerce values the way a write would, without writing)."""
    attr = replace(parent.attributes[slug], is_required=False, is_unique=False)
    return _HasAttributes(parent.id, parent.api_slug, parent.created_at, {slug: attr})


def _search_item(store: Store, obj: ObjectDef, record: Record) -> dict[str, Any]:
    names = record.values.get("name", [])
    text = ""
    if names:
        text = names[0].get("full_name") or names[0].get("value") or ""
    item: dict[str, Any] = {
        "id": {
            "workspace_id": store.workspace_id,
            "object_id": obj.id,
            "record_id": record.id,
        },
        "record_text": text,
        "record_image": None,
        "object_slug": obj.api_slug,
    }
    if obj.api_slug == "people":
        item["email_addresses"] = [
            v["email_address"] for v in record.values.get("email_addresses", [])
        ]
        item["phone_numbers"] = [v["phone_number"] for v in record.values.get("phone_numbers", [])]
    if obj.api_slug == "companies":
        item["domains"] = [v["domain"] for v in record.values.get("domains", [])]
    return item
