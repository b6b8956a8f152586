"""Comments: the threads on a record or a list entry, one thread or comment, and adding a
comment or a reply, or deleting one."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import ListSlug, ObjectSlug, Offset, Uuid
from ._call import ToolFailure, call_attio, reconnect_error
from ._results import Deleted, deleted, id_part, paged


class Comment(BaseModel):
    comment_id: str
    thread_id: str
    content: str
    author: dict[str, Any] | None
    created_at: str | None


class Thread(BaseModel):
    thread_id: str
    created_at: str | None
    comments: list[Comment]


ThreadList = paged("ThreadList", "threads", Thread)


def comment(item: dict) -> Comment:
    return Comment(
        comment_id=id_part(item, "comment_id"),
        thread_id=str(item.get("thread_id") or ""),
        content=item.get("content_plaintext") or "",
        author=item.get("author"),
        created_at=item.get("created_at"),
    )


def comment_target(
    object: str | None, record_id: str | None, list: str | None, entry_id: str | None
) -> dict[str, dict[str, str]]:
    """Where a comment goes: a record or a list entry, exactly one, given in full."""
    on_record = object is not None or record_id is not None
    on_entry = list is not None or entry_id is not None
    if on_record == on_entry:
        raise ToolFailure(
            "Name one place: a record (`object` and `record_id`) or a list entry (`list` "
            "and `entry_id`).",
            "invalid_arguments",
        )
    if on_record:
        if object is None or record_id is None:
            raise ToolFailure("Give both `object` and `record_id`.", "invalid_arguments")
        return {"record": {"object": object, "record_id": record_id}}
    if list is None or entry_id is None:
        raise ToolFailure("Give both `list` and `entry_id`.", "invalid_arguments")
    return {"entry": {"list": list, "entry_id": entry_id}}


@tool(title="List comment threads", read_only=True)
async def list_threads(
    caller: Caller,
    object: Annotated[ObjectSlug | None, Field(description="With `record_id`")] = None,
    record_id: Annotated[Uuid | None, Field(description="With `object`")] = None,
    list: Annotated[ListSlug | None, Field(description="With `entry_id`")] = None,
    entry_id: Annotated[Uuid | None, Field(description="With `list`")] = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Page size")] = 10,
    offset: Offset = 0,
) -> ThreadList:
    """List comment threads, with their comments, on a record or a list entry. Paged by
    `offset`."""
    target = comment_target(object, record_id, list, entry_id)
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if "record" in target:
        params.update(target["record"])
    else:
        params.update(target["entry"])
    items = await call_attio(caller, attio.alist_threads, params)
    return ThreadList.of([thread(t) for t in items], offset=offset, limit=limit)


async def own_member_id(caller: Caller) -> str:
    """The Attio workspace member who connected this workspace: comments are theirs."""
    connection = caller.connection
    if connection.attio_member_id:
        return connection.attio_member_id
    identity = await call_attio(caller, attio.aget_self)
    if not identity.active:
        raise reconnect_error(connection)
    if not identity.member_id:
        raise ToolFailure(
            "Attio does not say which workspace member this connection belongs to, so the "
            "comment cannot be signed. Reconnect the workspace at the portal and try again.",
            "no_member",
        )
    return identity.member_id


@tool(title="Add a comment", read_only=False)
async def create_comment(
    caller: Caller,
    content: Annotated[str, Field(min_length=1, max_length=10_000, description="Plaintext")],
    thread_id: Annotated[Uuid | None, Field(description="To reply in")] = None,
    object: Annotated[ObjectSlug | None, Field(description="With `record_id`")] = None,
    record_id: Annotated[Uuid | None, Field(description="With `object`")] = None,
    list: Annotated[ListSlug | None, Field(description="With `entry_id`")] = None,
    entry_id: Annotated[Uuid | None, Field(description="With `list`")] = None,
) -> Comment:
    """Start a thread on a record or list entry, or reply in `thread_id`: give exactly one.
    Posted as the member who connected the workspace."""
    if thread_id is not None:
        if any(x is not None for x in (object, record_id, list, entry_id)):
            raise ToolFailure(
                "Give `thread_id` alone to reply, or a record or list entry (without "
                "`thread_id`) to start a thread.",
                "invalid_arguments",
            )
        target: dict[str, Any] = {"thread_id": thread_id}
    else:
        target = comment_target(object, record_id, list, entry_id)
    author = {"type": "workspace-member", "id": await own_member_id(caller)}
    data = {"format": "plaintext", "content": content, "author": author, **target}
    return comment(await call_attio(caller, attio.acreate_comment, data, write=True))


def thread(item: dict) -> Thread:
    return Thread(
        thread_id=id_part(item, "thread_id"),
        created_at=item.get("created_at"),
        comments=[comment(c) for c in item.get("comments") or []],
    )


@tool(title="Get a comment thread", read_only=True)
async def get_thread(
    caller: Caller, thread_id: Annotated[Uuid, Field(description="The thread's UUID")]
) -> Thread:
    """Get one comment thread with all its comments, oldest first."""
    return thread(await call_attio(caller, attio.aget_thread, thread_id))


@tool(title="Get a comment", read_only=True)
async def get_comment(
    caller: Caller, comment_id: Annotated[Uuid, Field(description="The comment's UUID")]
) -> Comment:
    """Get one comment, with its thread id and author."""
    return comment(await call_attio(caller, attio.aget_comment, comment_id))


@tool(title="Delete a comment", read_only=False, destructive=True, idempotent=True)
async def delete_comment(
    caller: Caller, comment_id: Annotated[Uuid, Field(description="The comment's UUID")]
) -> Deleted:
    """Delete a comment for good (the first one deletes its whole thread). Confirm with
    the user first."""
    await call_attio(caller, attio.adelete_comment, comment_id, write=True)
    return deleted("comment", comment_id)
