"""Tasks: list, create, update and delete them (Attio's API cannot change a task's content)."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import MEMBER_PATTERN, ObjectSlug, Offset, RecordId, Uuid
from ._call import ToolFailure, call_attio
from ._results import Deleted, deleted, id_part, paged

Member = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        pattern=MEMBER_PATTERN,
        description="Member UUID or email",
    ),
]
Deadline = Annotated[
    datetime | None,
    Field(description="ISO 8601, e.g. 2025-06-30T17:00:00Z"),
]


class LinkedRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: ObjectSlug
    record_id: RecordId


LinkedRecords = Annotated[
    list[LinkedRecord], Field(max_length=50, description="Records it is about")
]
Assignees = Annotated[list[Member], Field(max_length=20, description="Who does it")]


class Task(BaseModel):
    task_id: str
    content: str
    deadline_at: str | None
    is_completed: bool
    linked_records: list[dict[str, str]] = Field(
        description="{target_object_id, target_record_id} of each linked record"
    )
    assignee_ids: list[str] = Field(description="Workspace member ids")
    created_at: str | None
    created_by: dict[str, Any] | None = None


TaskList = paged("TaskList", "tasks", Task)


def task(item: dict) -> Task:
    return Task(
        task_id=id_part(item, "task_id"),
        content=item.get("content_plaintext") or "",
        deadline_at=item.get("deadline_at"),
        is_completed=bool(item.get("is_completed")),
        linked_records=[
            {
                "target_object_id": str(r.get("target_object_id") or ""),
                "target_record_id": str(r.get("target_record_id") or ""),
            }
            for r in item.get("linked_records") or []
        ],
        assignee_ids=[str(a.get("referenced_actor_id")) for a in item.get("assignees") or []],
        created_at=item.get("created_at"),
        created_by=item.get("created_by_actor"),
    )


def attio_timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def attio_assignee(member: str) -> dict[str, str]:
    if "@" in member:
        return {"workspace_member_email_address": member}
    return {"referenced_actor_type": "workspace-member", "referenced_actor_id": member}


def attio_linked_record(linked: LinkedRecord) -> dict[str, str]:
    return {"target_object": linked.object, "target_record_id": linked.record_id}


@tool(title="List tasks", read_only=True)
async def list_tasks(
    caller: Caller,
    linked_object: Annotated[
        ObjectSlug | None, Field(description="With `linked_record_id`")
    ] = None,
    linked_record_id: Annotated[Uuid | None, Field(description="With `linked_object`")] = None,
    assignee: Annotated[Member | None, Field(description="Assigned to")] = None,
    is_completed: Annotated[bool | None, Field(description="Done (true) or open")] = None,
    newest_first: Annotated[bool, Field(description="Newest first")] = False,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size")] = 25,
    offset: Offset = 0,
) -> TaskList:
    """List tasks, optionally of one record or assignee, done or open."""
    if (linked_object is None) != (linked_record_id is None):
        raise ToolFailure(
            "Give `linked_object` and `linked_record_id` together (the record's object slug "
            "and id), or neither.",
            "invalid_arguments",
        )
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params["sort"] = "created_at:desc" if newest_first else "created_at:asc"
    if linked_object is not None:
        params.update(linked_object=linked_object, linked_record_id=linked_record_id)
    if assignee is not None:
        params["assignee"] = assignee
    if is_completed is not None:
        params["is_completed"] = "true" if is_completed else "false"
    items = await call_attio(caller, attio.alist_tasks, params)
    return TaskList.of([task(t) for t in items], offset=offset, limit=limit)


@tool(title="Create a task", read_only=False)
async def create_task(
    caller: Caller,
    content: Annotated[str, Field(min_length=1, max_length=2000, description="Plaintext")],
    deadline_at: Deadline = None,
    assignees: Assignees = [],  # noqa: B006 (pydantic copies defaults)
    linked_records: LinkedRecords = [],  # noqa: B006
    is_completed: Annotated[bool, Field(description="Already done")] = False,
) -> Task:
    """Create a task; its content cannot be changed later."""
    data = {
        "content": content,
        "format": "plaintext",
        "deadline_at": attio_timestamp(deadline_at),
        "is_completed": is_completed,
        "linked_records": [attio_linked_record(r) for r in linked_records],
        "assignees": [attio_assignee(m) for m in assignees],
    }
    return task(await call_attio(caller, attio.acreate_task, data, write=True))


@tool(title="Update a task", read_only=False, destructive=True, idempotent=True)
async def update_task(
    caller: Caller,
    task_id: Annotated[Uuid, Field(description="Task UUID")],
    is_completed: Annotated[bool | None, Field(description="Done (true) or open")] = None,
    deadline_at: Deadline = None,
    clear_deadline: Annotated[bool, Field(description="Remove the deadline")] = False,
    assignees: Annotated[
        list[Member] | None,
        Field(max_length=20, description="Replaces all; [] for none"),
    ] = None,
    linked_records: Annotated[
        list[LinkedRecord] | None,
        Field(max_length=50, description="Replaces all; [] for none"),
    ] = None,
) -> Task:
    """Change a task's status, deadline, assignees or links, not its content."""
    if deadline_at is not None and clear_deadline:
        raise ToolFailure("Give `deadline_at` or `clear_deadline`, not both.", "invalid_arguments")
    data: dict[str, Any] = {}
    if is_completed is not None:
        data["is_completed"] = is_completed
    if clear_deadline:
        data["deadline_at"] = None
    elif deadline_at is not None:
        data["deadline_at"] = attio_timestamp(deadline_at)
    if assignees is not None:
        data["assignees"] = [attio_assignee(m) for m in assignees]
    if linked_records is not None:
        data["linked_records"] = [attio_linked_record(r) for r in linked_records]
    if not data:
        raise ToolFailure(
            "Nothing to change: give `is_completed`, `deadline_at`, `clear_deadline`, "
            "`assignees` or `linked_records`.",
            "invalid_arguments",
        )
    return task(await call_attio(caller, attio.aupdate_task, task_id, data, write=True))


@tool(title="Delete a task", read_only=False, destructive=True, idempotent=True)
async def delete_task(
    caller: Caller, task_id: Annotated[Uuid, Field(description="Task UUID")]
) -> Deleted:
    """Delete a task for good (to close one: `update_task`)."""
    await call_attio(caller, attio.adelete_task, task_id, write=True)
    return deleted("task", task_id)
