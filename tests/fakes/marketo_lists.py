"""Static lists, Asset API folders and lists, and campaign triggers of the fake Marketo."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from tests.fakes.marketo_state import asset_time

if TYPE_CHECKING:
    from tests.fakes.marketo import FakeMarketo


def create_folder(
    fake: FakeMarketo, name: str, parent_id: int | None, folder_id: int | None = None
) -> int:
    """Store a folder and return its id."""
    folder_id = folder_id or fake.next_id("folder")
    now = asset_time(fake.clock.now())
    fake.folders[folder_id] = {
        "id": folder_id,
        "name": name,
        "type": "Folder",
        "parent": {"id": parent_id, "type": "Folder"} if parent_id else None,
        "folderId": {"id": folder_id, "type": "Folder"},
        "createdAt": now,
        "updatedAt": now,
    }
    return folder_id


def create_list(fake: FakeMarketo, name: str, folder_id: int) -> int:
    """Store a static list and return its id."""
    list_id = fake.next_id("list")
    now = asset_time(fake.clock.now())
    fake.lists[list_id] = {
        "id": list_id,
        "name": name,
        "folder": {"id": folder_id, "type": "Folder"},
        "members": set(),
        "createdAt": now,
        "updatedAt": now,
    }
    return list_id


ROUTES: list[Any] = []
