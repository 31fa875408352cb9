"""A third-party service installed by pip, next to broken ones: the example
service works end to end under real gunicorn, and each broken service is
reported by distribution, version and reason without taking it down."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from srht_core import __version__
from srht_core.config import dump_ini
from srht_core.testing import serve_service, site_config

pytestmark = pytest.mark.slow

BROKEN_ROWS = {
    "broken": (
        "srht-broken 0.3.1",
        "failed",
        "import failed: ModuleNotFoundError: No module named 'srht_no_such_dependency'",
    ),
    "misspelled": (
        "srht-broken 0.3.1",
        "failed",
        "implements unknown hook(s) blueprint (did you mean blueprints?), "
        "servce_info (did you mean service_info?)",
    ),
    "ancient": (
        "srht-broken 0.3.1",
        "incompatible",
        f"needs srht core <0.0.1, this is {__version__}",
    ),
}


def write_config(path: Path, services: dict[str, dict[str, str]]) -> Path:
    path.write_text(dump_ini(site_config(path.parent / "data", services)), encoding="utf-8")
    return path


def service_rows(output: str) -> dict[str, tuple[str, str, str]]:
    """The rows of `srht services`: {name: (package, status, why)}."""
    lines = output.splitlines()
    assert lines[0].split() == ["SERVICE", "PACKAGE", "STATUS", "WHY"]
    rows = {}
    for line in lines[1:]:
        match = re.match(r"^(\S+)\s+(\S+ \S+)\s+(\S+)\s*(.*)$", line)
        assert match, line
        name, package, status, why = match.groups()
        rows[name] = (package, status, why)
    return rows


def test_services_lists_hello_and_each_broken_service(hello_venv, tmp_path):
    without = write_config(tmp_path / "without.ini", {})
    result = hello_venv.run("--config", str(without), "services", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rows = service_rows(result.stdout)
    assert rows["hello"] == ("srht-hello 0.1.0", "disabled", f"no [hello] section in {without}")
    for name, row in BROKEN_ROWS.items():
        assert rows[name] == row

    with_hello = write_config(tmp_path / "with.ini", {"hello": {"greeting": "Bonjour"}})
    result = hello_venv.run("--config", str(with_hello), "services", cwd=tmp_path)
    assert result.returncode == 1
    rows = service_rows(result.stdout)
    assert rows["hello"] == ("srht-hello 0.1.0", "enabled", "")
    assert {name: rows[name] for name in BROKEN_ROWS} == BROKEN_ROWS


def test_config_check_knows_the_example_service_schema(hello_venv, tmp_path):
    good = write_config(tmp_path / "config.ini", {"hello": {"greeting": "Bonjour"}})
    result = hello_venv.run("config", "check", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("services: hello)")

    typo = write_config(tmp_path / "typo.ini", {"hello": {"greting": "Bonjour"}})
    result = hello_venv.run("config", "check", str(typo), cwd=tmp_path)
    assert result.returncode == 2
    line = typo.read_text().splitlines().index("greting = Bonjour") + 1
    assert result.stderr.splitlines() == [
        f"{typo}:{line} [hello] greting: unknown key (did you mean 'greeting'?)",
        "1 problem found; nothing was started.",
    ]


def test_config_check_names_a_broken_service_whose_section_is_present(hello_venv, tmp_path):
    path = write_config(tmp_path / "config.ini", {"hello": {}, "broken": {}})
    result = hello_venv.run("config", "check", str(path), cwd=tmp_path)
    assert result.returncode == 2
    line = path.read_text().splitlines().index("[broken]") + 1
    assert result.stderr.splitlines() == [
        f"{path}:{line} [broken]: service broken (srht-broken 0.3.1) is failed: import failed: "
        "ModuleNotFoundError: No module named 'srht_no_such_dependency'",
        "1 problem found; nothing was started.",
    ]


def test_the_example_service_passes_its_own_tests(hello_venv, tmp_path):
    """The template's tests run with the fixtures srht ships as a pytest plugin."""
    result = subprocess.run(
        [
            hello_venv.python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(hello_venv.sources / "hello-service" / "tests"),
        ],
        cwd=hello_venv.sources / "hello-service",
        env=hello_venv.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.fixture(scope="module")
def hello_site(hello_venv, tmp_path_factory):
    """`srht serve hello` from the venv, with the broken services installed
    beside it; the greeting has characters HTML must escape."""
    folder = tmp_path_factory.mktemp("hello-site")
    config = write_config(folder / "config.ini", {"hello": {"greeting": '<Hi & "welcome">'}})
    with serve_service("hello", config, python=hello_venv.python, env=hello_venv.env) as url:
        yield url, config


def csrf_token(html: str) -> str:
    match = re.search(
        r'<input id="csrf_token" name="csrf_token" type="hidden" '
        r'value="([^"]+)">',
        html,
    )
    assert match, html
    return match.group(1)


def test_the_page_is_served_in_the_shared_layout(hello_site):
    url, config = hello_site
    page = requests.get(url + "/", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    origin = re.search(r"^origin = (.+)$", config.read_text(), re.M).group(1)
    assert f'<li><a href="{origin}/" aria-current="page">Hello</a></li>' in page.text
    # One stylesheet: the core's, then the service's own (hello has no base template).
    stylesheet = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text)
    assert len(stylesheet) == 1 and stylesheet[0].startswith("/style.css?v="), page.text
    css = requests.get(url + stylesheet[0], timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert css.text.index(":root {") < css.text.index(".greeting {")
    assert '<footer class="site">' in page.text and "powered by srht" in page.text
    assert "<title>Hello · srht test</title>" in page.text


def test_the_greeting_is_html_escaped(hello_site):
    url, _config = hello_site
    page = requests.get(url + "/", timeout=30)
    assert '<h1 class="greeting">&lt;Hi &amp; &#34;welcome&#34;&gt;</h1>' in page.text
    assert "<Hi" not in page.text


def test_the_form_greets_back_with_a_csrf_token(hello_site):
    url, _config = hello_site
    session = requests.Session()
    token = csrf_token(session.get(url + "/", timeout=30).text)
    answer = session.post(url + "/", data={"name": "<Ada>", "csrf_token": token}, timeout=30)
    assert answer.status_code == 200
    assert [r.status_code for r in answer.history] == [302]
    assert (
        '<p class="flash ok" role="status">&lt;Hi &amp; &#34;welcome&#34;&gt;, &lt;Ada&gt;!</p>'
    ) in answer.text
    again = session.get(url + "/", timeout=30)
    assert "&lt;Ada&gt;!" not in again.text

    empty = session.post(url + "/", data={"name": "", "csrf_token": token}, timeout=30)
    assert empty.status_code == 400
    assert "This field is required." in empty.text


def test_the_form_is_refused_without_a_csrf_token(hello_site):
    url, _config = hello_site
    session = requests.Session()
    session.get(url + "/", timeout=30)
    refused = session.post(url + "/", data={"name": "Ada"}, timeout=30)
    assert refused.status_code == 400
    assert "The CSRF token is missing." in refused.text
    stranger = requests.post(url + "/", data={"name": "Ada", "csrf_token": "forged"}, timeout=30)
    assert stranger.status_code == 400
