"""What builds asks of the site's lists, through lists' public REST API
only (:func:`srht_core.call_service_api`), with a token meta issues for
the list's owner (:mod:`.delegation`): registering a webhook on a list,
reading a patchset's patches (its mbox), and saying what the jobs made of
it (``PUT .../patchsets/ID/tools/builds``). builds never imports lists
nor reads its database.
"""

from __future__ import annotations

from typing import Any

from srht_core import ServiceUnreachable, call_service_api, current_service

from .delegation import DelegationUnavailable, user_token

__all__ = [
    "ListsRefused",
    "ListsUnavailable",
    "lists_origin",
    "patchset_mbox",
    "register_webhook",
    "remove_webhook",
    "report_tool",
]

WEBHOOKS, EMAILS, TOOLS = "lists/lists:RW", "lists/emails:RO", "lists/tools:RW"
#: The name builds reports under on a patchset (``builds: success``).
TOOL = "builds"


class ListsUnavailable(OSError):
    """lists (or meta, for a token) could not be asked; try again later."""


class ListsRefused(ValueError):
    """lists answered no (a list that is not yours, or gone); ``str()``
    says what to do, ``status`` is lists' answer (403, 404...)."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.status = status


def lists_origin() -> str | None:
    return current_service().origins.get("lists")


def _call(user_id: int, scope: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    try:
        token = user_token(user_id, [scope])
    except DelegationUnavailable as error:
        raise ListsUnavailable(f"builds cannot act for you on lists: {error}") from None
    try:
        return call_service_api("lists", path, token=token, method=method, body=body)
    except ServiceUnreachable as error:
        raise ListsUnavailable(f"lists at {error.url} {error.reason}") from None


def _reasons(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("errors"), list):
        return "; ".join(str(e.get("reason")) for e in answer["errors"] if isinstance(e, dict))
    return ""


def _refused(status: int, answer: Any, what: str) -> ListsRefused:
    reason = _reasons(answer)
    return ListsRefused(
        f"lists refused to {what} ({status}{': ' + reason if reason else ''})", status
    )


def register_webhook(user: Any, list_name: str, url: str) -> int:
    """Ask lists to POST ``patchset:received`` of ``user``'s list to
    ``url``; the webhook's id.

    :raises ListsRefused: the list is not the user's, or does not exist.
    :raises ListsUnavailable: lists or meta could not be asked.
    """
    path = f"/api/lists/{user.username}/{list_name}/webhooks"
    status, answer = _call(
        user.id, WEBHOOKS, "POST", path, {"url": url, "events": ["patchset:received"]}
    )
    if status == 404:
        raise ListsRefused(f"you have no list {list_name} on lists", status)
    if status == 403:
        raise _refused(status, answer, f"let you watch {user.canonical_name}/{list_name}")
    if status not in (200, 201) or not isinstance(answer, dict) or "id" not in answer:
        raise _refused(status, answer, "register the webhook")
    return int(answer["id"])


def remove_webhook(user: Any, list_name: str, webhook_id: int) -> None:
    path = f"/api/lists/{user.username}/{list_name}/webhooks/{webhook_id}"
    status, answer = _call(user.id, WEBHOOKS, "DELETE", path)
    if status not in (200, 204, 404):
        raise _refused(status, answer, "remove the webhook")


def patchset_mbox(user: Any, list_name: str, patchset_id: int) -> bytes:
    """The patches of patchset ``patchset_id`` of ``user``'s list, as the
    mbox ``git am`` applies.

    :raises ListsRefused: no such patchset (deleted since), or no such list.
    :raises ListsUnavailable: lists or meta could not be asked.
    """
    path = f"/api/lists/{user.username}/{list_name}/patchsets/{patchset_id}/mbox"
    status, answer = _call(user.id, EMAILS, "GET", path)
    if status != 200 or not isinstance(answer, bytes):
        raise _refused(status, answer, f"give the patches of patchset {patchset_id}")
    return answer


def report_tool(
    user: Any, list_name: str, patchset_id: int, status: str, details: str, url: str
) -> None:
    """Tell lists what builds made of a patchset (shown on its page as
    ``builds: STATUS``).

    :raises ListsRefused: lists said no (the patchset or list is gone).
    :raises ListsUnavailable: lists or meta could not be asked.
    """
    path = f"/api/lists/{user.username}/{list_name}/patchsets/{patchset_id}/tools/{TOOL}"
    answer_status, answer = _call(
        user.id, TOOLS, "PUT", path, {"status": status, "details": details[:256], "url": url}
    )
    if answer_status != 200:
        raise _refused(answer_status, answer, f"record the status of patchset {patchset_id}")
