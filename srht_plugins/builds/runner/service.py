"""How a runner speaks to the service: the internal API of
:mod:`srht_plugins.builds.runners`, over HTTP with the site's internal
credentials (:func:`srht_core.internal_request`), from inside the builds
app's context (the runner command runs in it)."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from srht_core import ServiceUnreachable, internal_request

__all__ = ["Service"]

log = logging.getLogger("srht.builds.runner")


class Service:
    """The builds service, as runner ``name`` talks to it."""

    def __init__(self, name: str):
        self.name = name

    def _post(self, path: str, body: dict[str, Any], *, attempts: int = 1) -> Any:
        for attempt in range(attempts):
            try:
                return internal_request(
                    "builds", "/internal/builds" + path, method="POST", body=body, timeout=30
                )
            except ServiceUnreachable:
                if attempt + 1 >= attempts:
                    raise
                time.sleep(min(2**attempt, 10))
        return None

    def images(self) -> list[dict[str, Any]]:
        answer = internal_request("builds", "/internal/builds/images", timeout=30)
        return list(answer["images"]) if isinstance(answer, dict) else []

    def claim(self, job: int | None = None, images: list[str] | None = None) -> Any:
        """The spec of job ``job`` (or of the oldest queued job of
        ``images``) now held by this runner, or ``None``."""
        body: dict[str, Any] = {"runner": self.name}
        if job is not None:
            body["job"] = job
        else:
            body["images"] = images or []
        answer = self._post("/claim", body, attempts=3)
        return answer.get("job") if isinstance(answer, dict) else None

    def progress(
        self, job: int, logs: list[tuple[int, bytes]], tasks: list[tuple[int, str]]
    ) -> str | None:
        """Send log pieces and task states; why to stop, or ``None``."""
        answer = self._post(
            f"/jobs/{job}/progress",
            {
                "runner": self.name,
                "logs": [[p, base64.b64encode(data).decode()] for p, data in logs],
                "tasks": [[p, status] for p, status in tasks],
            },
        )
        return answer.get("stop") if isinstance(answer, dict) else "the job is gone"

    def artifact(self, job: int, name: str, path: str, offset: int, data: bytes) -> Any:
        return self._post(
            f"/jobs/{job}/artifact",
            {
                "runner": self.name,
                "name": name,
                "path": path,
                "offset": offset,
                "data": base64.b64encode(data).decode(),
            },
            attempts=3,
        )

    def finish(self, job: int, status: str, reason: str) -> None:
        self._post(
            f"/jobs/{job}/finish",
            {"runner": self.name, "status": status, "reason": reason},
            attempts=6,
        )

    def lost(self, jobs: list[int], *, stopped: bool = False) -> list[int]:
        """Jobs this runner no longer runs: lost with its last life, or
        (``stopped``) stopped because the runner is."""
        answer = self._post(
            "/lost", {"runner": self.name, "jobs": jobs, "stopped": stopped}, attempts=6
        )
        return list(answer.get("jobs") or []) if isinstance(answer, dict) else []
