"""What hub knows of the other services, learnt only over HTTP: the
resource types each offers (``GET /api/resource-types`` at its origin), a
user's resources and one resource (its REST API, with a token meta
delegates for the user), and the webhooks hub keeps on them.

Nothing here reads another service's database or code, so hub works the
same when git runs on another host. A service that does not answer, or
answers an error, is :class:`Unreachable`, named in the message; pages
show what hub last knew and say which service did not answer.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from srht_core import (
    ApiError,
    BoundedCache,
    ServiceUnreachable,
    call_service_api,
    current_service,
    delegated_token,
)

#: Seconds a service's resource types are kept (a failed discovery: FAILED_TTL).
TYPES_TTL, FAILED_TTL = 300.0, 10.0
#: Seconds the result of asking a service about one resource is kept.
CHECK_TTL = 15.0


class Unreachable(Exception):
    """Service ``service`` did not answer, or answered an error."""

    def __init__(self, service: str, reason: str):
        super().__init__(f"{service} did not answer: {reason}")
        self.service, self.reason = service, reason


@dataclass(frozen=True)
class Kind:
    """A resource type a service offers, as it declared it."""

    service: str
    origin: str
    name: str
    label: str
    scope: str
    mine: str
    item: str
    page: str
    title: str
    listed: str
    webhooks: str
    events: tuple[str, ...]
    choose_events: bool

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

    def fill(self, template: str, obj: dict[str, Any]) -> str:
        """``template`` filled from ``obj`` as the service's API answers it."""
        try:
            return template.format_map(obj)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise Unreachable(self.service, f"its {self.name} lacks {error}") from None


@dataclass
class Caches:
    types: BoundedCache[str, tuple[float, list[Kind] | Unreachable]] = field(
        default_factory=lambda: BoundedCache(256)
    )
    checks: BoundedCache[int, tuple[float, Check]] = field(
        default_factory=lambda: BoundedCache(16384)
    )


@dataclass(frozen=True)
class Check:
    """What a service said of a resource just now: ``state`` ``ok`` (with
    the object), ``gone`` (404 to its owner), or ``unreachable`` (with why)."""

    state: str
    obj: dict[str, Any] | None = None
    problem: str = ""


def caches() -> Caches:
    return current_app.extensions.setdefault("hub.caches", Caches())  # type: ignore[no-any-return]


def default_timeout() -> float:
    return float(current_service().section["service-timeout"])


def call(
    service: str,
    path: str,
    *,
    token: str | None = None,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> tuple[int, Any]:
    """``(status, JSON)`` of a call of ``service``'s REST API at ``path``
    (the core's :func:`~srht_core.call_service_api`); 4xx answers are
    returned. ``timeout``: seconds to wait (default: ``[hub]
    service-timeout``).

    :raises Unreachable: the service is not configured, cannot be reached,
        or answers 5xx or something that is not JSON.
    """
    if not current_service().origins.get(service):
        raise Unreachable(service, "it is not in this site's config")
    wait = timeout if timeout is not None else default_timeout()
    try:
        status, answer = call_service_api(
            service, path, token=token, method=method, body=body, timeout=wait
        )
    except ServiceUnreachable as error:
        raise Unreachable(service, f"{error.url} {error.reason}") from None
    if isinstance(answer, bytes):
        raise Unreachable(service, f"{path} answered something not JSON")
    return status, answer


def kinds_of(service: str) -> list[Kind]:
    """The resource types ``service`` offers (kept a while).

    :raises Unreachable: when it cannot be asked.
    """
    kept = caches().types.get(service)
    if kept is not None and kept[0] > time.monotonic():
        if isinstance(kept[1], Unreachable):
            raise kept[1]
        return kept[1]
    try:
        status, answer = call(service, "/api/resource-types")
        if status == 404:
            found: list[Kind] = []  # a service older than the hook offers nothing
        elif status != 200 or not isinstance(answer, dict):
            raise Unreachable(service, f"/api/resource-types answered {status}")
        else:
            origin = str(answer.get("origin") or current_service().origins[service])
            found = [
                Kind(
                    service=service,
                    origin=origin,
                    events=tuple(declared.get("events", ())),
                    **{
                        key: declared[key]
                        for key in (
                            "name",
                            "label",
                            "scope",
                            "mine",
                            "item",
                            "page",
                            "title",
                            "listed",
                            "webhooks",
                            "choose_events",
                        )
                    },
                )
                for declared in answer.get("resource_types", ())
            ]
    except (Unreachable, KeyError, TypeError) as error:
        problem = error if isinstance(error, Unreachable) else Unreachable(service, str(error))
        caches().types.put(service, (time.monotonic() + FAILED_TTL, problem))
        raise problem from None
    caches().types.put(service, (time.monotonic() + TYPES_TTL, found))
    return found


def all_kinds() -> tuple[list[Kind], list[Unreachable]]:
    """Every resource type the site's other services offer, and the
    services that could not be asked."""
    kinds: list[Kind] = []
    problems: list[Unreachable] = []
    state = current_service()
    for service in sorted(state.origins):
        if service in ("hub", "meta"):
            continue
        try:
            kinds += kinds_of(service)
        except Unreachable as problem:
            problems.append(problem)
    return kinds, problems


def kind(service: str, name: str) -> Kind:
    """:raises LookupError: when ``service`` offers no ``name``.
    :raises Unreachable: when it cannot be asked."""
    for offered in kinds_of(service):
        if offered.name == name:
            return offered
    raise LookupError(f"{service} offers no resource type {name!r}")


def token_for(user_id: int, kind: Kind, write: bool = False) -> str:
    """A token speaking for ``user_id`` on ``kind``'s service.

    :raises Unreachable: naming meta, when meta cannot be asked or refuses.
    """
    try:
        return delegated_token(user_id, [f"{kind.scope}:{'RW' if write else 'RO'}"])
    except ApiError as error:
        raise Unreachable("meta", str(error)) from None


def list_mine(user_id: int, kind: Kind, limit: int = 100) -> list[dict[str, Any]]:
    """Up to ``limit`` of the user's own objects of ``kind``, newest first."""
    token = token_for(user_id, kind)
    status, answer = call(kind.service, f"{kind.mine}?limit={limit}", token=token)
    if status != 200 or not isinstance(answer, dict):
        raise Unreachable(kind.service, f"{kind.mine} answered {status}")
    return [obj for obj in answer.get("results", ()) if isinstance(obj, dict)]


def read(user_id: int, kind: Kind, item: str) -> dict[str, Any] | None:
    """Object ``item`` as its owner ``user_id`` sees it; ``None`` when gone."""
    status, answer = call(kind.service, item, token=token_for(user_id, kind))
    if status in (403, 404):
        return None
    if status != 200 or not isinstance(answer, dict):
        raise Unreachable(kind.service, f"{item} answered {status}")
    return answer


def check(source: Any) -> Check:
    """What ``source``'s service says of it now (kept ``CHECK_TTL`` seconds)."""
    kept = caches().checks.get(source.id)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    try:
        offered = kind(source.service, source.kind)
        obj = read(source.owner_id, offered, source.item)
        result = Check("gone") if obj is None else Check("ok", obj)
    except LookupError:
        result = Check("unreachable", problem=f"{source.service} no longer offers {source.kind}s")
    except Unreachable as problem:
        result = Check("unreachable", problem=str(problem))
    caches().checks.put(source.id, (time.monotonic() + CHECK_TTL, result))
    return result


def forget_check(source_id: int) -> None:
    caches().checks.pop(source_id)


def new_hook_key() -> str:
    return secrets.token_urlsafe(24)


def hook_url(source: Any) -> str:
    """Where ``source``'s service posts its events."""
    # Built by hand: the worker subscribes outside any request.
    return f"{current_service().origin}/webhooks/{source.id}/{source.hook_key}"


def subscribe(source: Any) -> int | None:
    """Subscribe hub's URL for ``source`` to its events, as its owner;
    the service's id of the webhook (``None`` when the type has none).

    :raises Unreachable: when the service or meta cannot be asked, or
        refuses (the message says why).
    """
    offered = kind(source.service, source.kind)
    if not offered.webhooks:
        return None
    obj = read(source.owner_id, offered, source.item)
    if obj is None:
        raise Unreachable(source.service, f"{source.title} is gone")
    body: dict[str, Any] = {"url": hook_url(source)}
    if offered.choose_events:
        body["events"] = list(offered.events)
    token = token_for(source.owner_id, offered, write=True)
    status, answer = call(
        source.service, offered.fill(offered.webhooks, obj), token=token, method="POST", body=body
    )
    if status not in (200, 201) or not isinstance(answer, dict) or "id" not in answer:
        reason = _reason(answer) or f"answered {status}"
        raise Unreachable(source.service, f"refused hub's webhook on {source.title}: {reason}")
    return int(answer["id"])


def unsubscribe(owner_id: int, service: str, kind_name: str, item: str, webhook_id: int) -> None:
    """Remove hub's webhook ``webhook_id`` from ``item`` (nothing to do when
    the resource is gone: its webhooks went with it)."""
    offered = kind(service, kind_name)
    obj = read(owner_id, offered, item)
    if obj is None or not offered.webhooks:
        return
    path = f"{offered.fill(offered.webhooks, obj)}/{webhook_id}"
    call(service, path, token=token_for(owner_id, offered, True), method="DELETE")


def _reason(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("errors"), list):
        return "; ".join(
            f"{str(e['field']) + ': ' if e.get('field') else ''}{e.get('reason', '')}"
            for e in answer["errors"]
            if isinstance(e, dict)
        )
    return ""
