"""Tests of the hello service, with the fixtures srht ships as a pytest
plugin: ``register_plugin``, ``make_config`` and ``make_app``."""

from __future__ import annotations

import re

import pytest
import srht_hello


@pytest.fixture
def app(register_plugin, make_config, make_app):
    register_plugin(srht_hello, "hello")
    return make_app("hello", make_config({"hello": {"greeting": "Howdy"}}))


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_front_page_shows_the_configured_greeting(app):
    page = app.test_client().get("/")
    assert page.status_code == 200
    assert '<h1 class="greeting">Howdy</h1>' in page.text


def test_the_form_greets_back(app):
    client = app.test_client()
    token = csrf_token(client.get("/").text)
    page = client.post("/", data={"name": "Ada", "csrf_token": token}, follow_redirects=True)
    assert "Howdy, Ada!" in page.text


def test_an_empty_name_is_refused(app):
    client = app.test_client()
    token = csrf_token(client.get("/").text)
    page = client.post("/", data={"name": "", "csrf_token": token})
    assert page.status_code == 400
    assert "This field is required." in page.text
