"""A runner: the process on a runner host that takes jobs and runs them
(``srht builds runner``, a systemd unit the deploy writes).

At start it removes what an earlier life left behind (and tells the
service which jobs it lost), finds where to put job control groups, and
builds or reuses every image the service lists. Then, with ``[srht]
broker`` set, it is a Celery worker on the queues of its images with one
thread per job slot (``[builds] runner-jobs``); without a broker it asks
the service for work every second. Images are built again in the
background once they are older than ``[builds] image-refresh``.

Stopping it (SIGTERM, a deploy restarting it) stops its containers at once
and tells the service, which queues again the jobs that had not begun.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask

from srht_core import ServiceUnreachable, state_of

from ..dispatch import RUN_TASK, celery_app
from ..images import Image
from . import cgroups
from .images import ImageStore
from .job import JobRun, RunnerContext, clean_leftovers
from .service import Service

__all__ = ["Runner", "RunnerError"]

log = logging.getLogger("srht.builds.runner")

#: Programs every runner needs, and what they are for.
PROGRAMS = {
    "systemd-nspawn": "systemd-container",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "ip": "iproute2",
    "git": "git",
    "tar": "tar",
}
#: Seconds between checks whether an image is due to be built again.
REFRESH_CHECK = 600
#: Most seconds between tries to reach the service at start.
MAX_WAIT = 30


class RunnerError(RuntimeError):
    """The runner cannot work on this host; ``str()`` says why."""


class Runner:
    """One runner process.

    :param app: the builds app (its config and internal API client).
    :param name: how the service knows this runner (the host name).
    :param slots: jobs at once (default ``[builds] runner-jobs``).
    :param directory: its folder (default ``[builds] runner-dir``).
    """

    def __init__(
        self, app: Flask, name: str, *, slots: int | None = None, directory: str | None = None
    ):
        self.app = app
        section = state_of(app).section
        self.broker = state_of(app).config.get("srht", "broker")
        folder = Path(directory or section["runner-dir"])
        self.context = RunnerContext(name, folder, Service(name), section["uid-base"])
        self.store = ImageStore(
            folder / "images",
            section["uid-base"],
            section["debian-mirror"],
            section["package-proxy"],
            section["image-refresh"],
        )
        self.slots = slots or section["runner-jobs"]
        self.network = section["network"]
        self.images: dict[str, Image] = {}
        self.stopping = threading.Event()
        #: Set to have the images checked now (see :meth:`_refresh`).
        self.check_images = threading.Event()

    # -- starting ------------------------------------------------------------------

    def check_host(self) -> None:
        wanted = dict(PROGRAMS)
        if self.network == "full":
            wanted["slirp4netns"] = "slirp4netns"
        missing = [f"{p} (Debian: {d})" for p, d in wanted.items() if shutil.which(p) is None]
        if missing:
            raise RunnerError("missing programs: " + ", ".join(missing))
        try:
            cgroups.prepare()
        except cgroups.CgroupError as error:
            raise RunnerError(str(error)) from None

    def start(self) -> None:
        """Clean up, and make every image ready."""
        self.check_host()
        self.context.jobs_dir.mkdir(parents=True, exist_ok=True)
        with self.app.app_context():
            lost = clean_leftovers(self.context)
            if lost:
                log.warning("jobs %s were running when this runner last stopped", lost)
                try:
                    self.context.service.lost(lost)
                except ServiceUnreachable as error:
                    log.error("could not tell the service of lost jobs %s: %s", lost, error)
            listed = self._images()
        for entry in listed:
            image = Image(
                entry["name"],
                suite=entry.get("suite"),
                packages=tuple(entry.get("packages") or ()),
                tarball=entry.get("tarball"),
            )
            self.images[image.name] = image
            self._build(image)
        if not self.context.trees:
            raise RunnerError("no image could be made ready; see the messages above")

    def _images(self) -> list[dict[str, Any]]:
        """The images the service lists, once it answers: a runner may start
        before the service does (a deploy starts both hosts at once, a
        reboot brings them up in any order), so it waits, saying why."""
        delay = 1.0
        while True:
            try:
                return self.context.service.images()
            except ServiceUnreachable as error:
                log.warning("waiting for the builds service: %s (again in %.0f s)", error, delay)
            if self.stopping.wait(delay):
                raise RunnerError("stopped while waiting for the builds service")
            delay = min(delay * 2, MAX_WAIT)

    def _build(self, image: Image) -> None:
        try:
            tree = self.store.ensure(image, log.info)
        except Exception as error:  # noqa: BLE001 - one image failing leaves the others
            log.error("image %s could not be built: %s", image.name, error)
            return
        with self.context.lock:
            self.context.trees[image.name] = tree

    def _refresh(self) -> None:
        """Build stale images again, and remove old trees no job uses: every
        ``REFRESH_CHECK`` seconds, and whenever a job starts or ends (a
        check costs a ``stat``)."""
        while not self.stopping.is_set():
            self.check_images.wait(REFRESH_CHECK)
            self.check_images.clear()
            if self.stopping.is_set():
                return
            for image in list(self.images.values()):
                if self.store.stale(image):
                    self._build(image)
                self._prune(image)

    def _prune(self, image: Image) -> None:
        with self.context.lock:
            in_use = {
                run.tree for run in self.context.running.values() if run.tree is not None
            } | set(self.context.trees.values())
        self.store.prune(image, in_use)

    # -- running jobs --------------------------------------------------------------

    def run_job(self, job_id: int | None = None) -> bool:
        """Claim job ``job_id`` (or any job of this runner's images) and run
        it; ``False`` when there was none to take."""
        if self.stopping.is_set():
            return False
        with self.app.app_context():
            try:
                spec = self.context.service.claim(job_id, sorted(self.context.trees))
            except ServiceUnreachable as error:
                log.warning("could not claim a job: %s", error)
                return False
            if spec is None:
                return False
            with self.context.lock:
                run = JobRun(self.context, spec)
                self.context.running[run.id] = run
            log.info("job %s: started (%s)", run.id, spec["image"])
            self.check_images.set()
            try:
                run.execute()
            finally:
                with self.context.lock:
                    self.context.running.pop(run.id, None)
                self.check_images.set()
            log.info("job %s: ended", run.id)
            if self.stopping.is_set():
                with contextlib.suppress(ServiceUnreachable):
                    self.context.service.lost([run.id], stopped=True)
        return True

    def shutdown(self) -> None:
        """Stop taking jobs and stop the running ones now; the service
        hears of each as lost."""
        self.stopping.set()
        self.check_images.set()
        with self.context.lock:
            runs = list(self.context.running.values())
        for run in runs:
            run.lost = True
            run.stopping = "the runner was stopped"
            run.kill()

    def serve(self) -> None:
        """Take jobs until stopped: from the broker, or by asking."""
        threading.Thread(target=self._refresh, name="image-refresh", daemon=True).start()
        if self.broker:
            self._celery()
        else:
            self._poll()

    def _poll(self) -> None:
        def slot() -> None:
            while not self.stopping.is_set():
                if not self.run_job():
                    self.stopping.wait(1.0)

        threads = [
            threading.Thread(target=slot, name=f"slot-{n}", daemon=True) for n in range(self.slots)
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stopping.is_set():
                self.stopping.wait(1.0)
        finally:
            self.shutdown()
            for thread in threads:
                thread.join(60)

    def _celery(self) -> None:
        from celery.signals import worker_shutting_down

        celery = celery_app(str(self.broker))

        @celery.task(name=RUN_TASK, bind=True)  # type: ignore[untyped-decorator]
        def run(task: Any, job_id: int) -> None:
            if self.run_job(int(job_id)) or not self.stopping.is_set():
                return
            # Taken off the queue while this runner stops (Celery's warm
            # shutdown still fetches): put back for the next runner, rather
            # than leave the job to the watchdog's republishing a minute on.
            queue = (task.request.delivery_info or {}).get("routing_key")
            if queue:
                celery.send_task(RUN_TASK, args=[job_id], queue=queue)
                log.info("job %s: handed back to %s (this runner is stopping)", job_id, queue)

        def stop(**_kwargs: Any) -> None:
            self.shutdown()

        worker_shutting_down.connect(stop, weak=False)
        queues = ",".join(sorted(self.images[name].queue for name in self.context.trees))
        log.info("runner %s: %d slots, queues %s", self.context.name, self.slots, queues)
        celery.worker_main(
            [
                "worker",
                "-Q",
                queues,
                "-c",
                str(self.slots),
                "-P",
                "threads",
                "-n",
                f"builds-runner-{self.context.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ]
        )
        self.shutdown()
        time.sleep(0.5)
