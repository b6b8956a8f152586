"""The people in the workspace: list them, or get one."""

from typing import Annotated

from pydantic import BaseModel, Field

from connections import attio

from ..auth import Caller
from . import tool
from ._arguments import Uuid
from ._call import call_attio
from ._results import id_part


class WorkspaceMember(BaseModel):
    workspace_member_id: str
    first_name: str | None
    last_name: str | None
    email_address: str | None
    access_level: str | None
    avatar_url: str | None
    created_at: str | None


class WorkspaceMemberList(BaseModel):
    members: list[WorkspaceMember]


def workspace_member(item: dict) -> WorkspaceMember:
    return WorkspaceMember(
        workspace_member_id=id_part(item, "workspace_member_id"),
        first_name=item.get("first_name"),
        last_name=item.get("last_name"),
        email_address=item.get("email_address"),
        access_level=item.get("access_level"),
        avatar_url=item.get("avatar_url"),
        created_at=item.get("created_at"),
    )


@tool(title="List workspace members", read_only=True)
async def list_workspace_members(caller: Caller) -> WorkspaceMemberList:
    """List the workspace's members: id, name, email and access level."""
    items = await call_attio(caller, attio.alist_workspace_members)
    return WorkspaceMemberList(members=[workspace_member(m) for m in items])


@tool(title="Get a workspace member", read_only=True)
async def get_workspace_member(
    caller: Caller,
    workspace_member_id: Annotated[Uuid, Field(description="The member's UUID")],
) -> WorkspaceMember:
    """Get one workspace member (e.g. a task's assignee or a record's owner)."""
    return workspace_member(
        await call_attio(caller, attio.aget_workspace_member, workspace_member_id)
    )
