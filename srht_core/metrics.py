"""Prometheus metrics: request counts and latencies per endpoint, pages
answered from memory or rendered for visitors without cookies, and the
depth of the service's job queue, served at ``/metrics`` to internal
networks only (everyone else gets a 404).

Each app has its own registry. Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` (``srht serve`` does) and the figures of every
worker are added up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .globals import SrhtState
from .jobs import queue_depth
from .security import internal_only


class QueueCollector:
    """Reads the job queue's depth from the database at scrape time."""

    def __init__(self, state: SrhtState):
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("srht_jobs_queued", "Jobs waiting to run", labels=["service"])
        try:
            depth = queue_depth(self.state.db)
        except Exception:  # noqa: BLE001 - a missing table before `srht migrate` is not fatal
            depth = -1
        gauge.add_metric([self.state.service.name], depth)
        yield gauge


def init_app(app: Flask, state: SrhtState) -> None:
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if multiprocess and values.ValueClass is values.MutexValue:
        # prometheus_client chooses where values live when it is first
        # imported, which can be before `srht serve` sets the folder (loading
        # the plugins imports the core): choose again, or every worker would
        # count in its own memory and the scrape would find nothing.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    own = None if multiprocess else registry
    requests = Counter(
        "srht_requests",
        "HTTP requests handled",
        ["service", "method", "endpoint", "status"],
        registry=own,
    )
    latency = Histogram(
        "srht_request_duration_seconds",
        "Time to answer HTTP requests",
        ["service", "endpoint"],
        registry=own,
    )
    kept_pages = Counter(
        "srht_kept_pages",
        "Pages for visitors without cookies that "
        "may be kept: answered from memory (hit) or rendered (miss)",
        ["service", "result"],
        registry=own,
    )
    kept_users = Counter(
        "srht_kept_users",
        "Users behind tokens and login cookies looked up while they may be "
        "kept: answered from memory (hit) or read from the database (miss)",
        ["service", "result"],
        registry=own,
    )
    service = state.service.name
    hits, misses = kept_pages.labels(service, "hit"), kept_pages.labels(service, "miss")
    state.count_kept_page = lambda hit: (hits if hit else misses).inc()
    user_hits, user_misses = kept_users.labels(service, "hit"), kept_users.labels(service, "miss")
    state.users.count = lambda hit: (user_hits if hit else user_misses).inc()

    @app.after_request
    def record(response: Response) -> Response:
        started = g.get("srht_started")  # set by the app's first before_request
        endpoint = request.endpoint or "unmatched"
        if started is not None and endpoint != "srht_metrics":
            requests.labels(service, request.method, endpoint, str(response.status_code)).inc()
            latency.labels(service, endpoint).observe(time.perf_counter() - started)
        return response

    @internal_only
    def metrics() -> Any:
        scrape = registry
        if multiprocess:
            scrape = CollectorRegistry()
            MultiProcessCollector(scrape)  # type: ignore[no-untyped-call]
        body = generate_latest(scrape)
        if multiprocess:
            body += generate_latest(_queue_registry)
        return Response(body, mimetype="text/plain; version=0.0.4")

    _queue_registry = CollectorRegistry()
    _queue_registry.register(QueueCollector(state))
    if not multiprocess:
        registry.register(QueueCollector(state))
    metrics.srht_csrf_exempt = True  # type: ignore[attr-defined]
    app.add_url_rule("/metrics", "srht_metrics", metrics)
