"""The hello service: the smallest complete srht service.

This module is the plugin: hook implementations only, one per thing the
service contributes, so it reads as the table of contents of the service.
Everything comes from ``srht_core``'s top level, the core's public surface.
"""

from __future__ import annotations

from flask import Blueprint

from srht_core import Config, NavEntry, Section, ServiceInfo, hookimpl

from .config import HELLO
from .web import web


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(
        "hello",
        "Hello",
        "Greets visitors by name; the template for new services.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5099,
    )


@hookimpl
def config_schema() -> list[Section]:
    return [HELLO]


@hookimpl
def blueprints(config: Config) -> list[Blueprint]:
    return [web]


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Hello", "/", order=100)]
