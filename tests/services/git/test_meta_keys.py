"""meta's internal lookup of an SSH key by fingerprint, which git's
AuthorizedKeysCommand uses: found for internal callers with a sealed
credential, 404 for an unknown fingerprint and for anyone else."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from srht_core.identity import INTERNAL_HEADER, seal
from srht_plugins.git.ssh import fingerprint

from .conftest import GitStack, register_key

pytestmark = pytest.mark.postgres


def test_meta_finds_a_key_by_fingerprint_for_internal_callers_only(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    pair = register_key(git_stack, alice)
    blob = base64.b64decode(pair.public.split()[1])
    url = git_stack.meta_url + "/internal/ssh-keys"
    with git_stack.git_app.app_context():
        credential = seal({"from": "git", "to": "meta", "t": time.time()})
    found = requests.get(
        url,
        params={"fingerprint": fingerprint(blob)},
        headers={INTERNAL_HEADER: credential},
        timeout=30,
    )
    assert found.status_code == 200
    body = found.json()
    assert body["key"] == " ".join(pair.public.split()[:2])
    assert body["user"]["username"] == alice
    assert body["fingerprint"] == fingerprint(blob)

    unknown = requests.get(
        url,
        params={"fingerprint": "SHA256:nope"},
        headers={INTERNAL_HEADER: credential},
        timeout=30,
    )
    assert unknown.status_code == 404
    outsider = requests.get(url, params={"fingerprint": fingerprint(blob)}, timeout=30)
    assert outsider.status_code == 404
