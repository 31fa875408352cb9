"""paste as a plugin: what it declares to the core (config keys, scopes,
navigation) and account deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from srht_core import ConfigError, PluginHost
from srht_plugins.paste.models import Paste, PasteFile

from .conftest import PasteSite


def test_the_installed_entry_point_loads_paste() -> None:
    record = PluginHost().get("paste")
    assert record is not None and record.ok, record and record.reason
    assert record.info is not None and record.info.title == "Pastes"


@pytest.mark.postgres
def test_declarations(paste_site: PasteSite) -> None:
    state = paste_site.state
    assert state.plugins.oauth_scopes(["paste"]) == {
        "paste/pastes": "your pastes: read them, or also create and delete them"
    }
    pastes = [link for link in state.nav if link.service == "paste"]
    assert [(link.label, link.url) for link in pastes] == [("Pastes", state.origin + "/")]
    assert state.section["max-file-size"] == 1024 * 1024
    assert state.section["max-paste-size"] == 4 * 1024 * 1024
    schema = {section.name: section for section in state.plugins.config_schemas()[0].values()}
    keys = {key.name: key for key in schema["paste"].keys}
    assert keys["max-file-size"].description and keys["max-paste-size"].description


@pytest.mark.postgres
def test_bad_limits_are_config_errors(
    paste_plugins: None,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    srht_database_url: str,
) -> None:
    config = make_config(
        {
            "meta": {},
            "paste": {
                "connection-string": srht_database_url,
                "max-file-size": "0",
                "max-paste-size": "lots",
            },
        }
    )
    with pytest.raises(ConfigError) as raised:
        make_app("paste", config)
    problems = {(p.section, p.key): p.message for p in raised.value.problems}
    assert problems[("paste", "max-file-size")] == "must be at least 1, got 0"
    assert problems[("paste", "max-paste-size")] == "not a whole number: 'lots'"


@pytest.mark.postgres
def test_deleting_an_account_deletes_its_pastes(paste_site: PasteSite) -> None:
    from srht_plugins.paste.models import User

    alice = paste_site.user("alice")
    bob = paste_site.user("bob")
    for owner in (alice, bob):
        with paste_site.db() as session:
            paste = Paste(slug=f"{owner:016x}", owner_id=owner, visibility="public")
            paste.files = [PasteFile(position=1, filename="a", content="a", size=1)]
            session.add(paste)
    # What the core does on a signed user:delete event from meta.
    with paste_site.app.app_context():
        from srht_core import db_session

        user = db_session.get(User, alice)
        paste_site.state.plugins.call_one("user_deleted", "paste", user=user)
        db_session.delete(user)
        db_session.commit()
    with paste_site.db() as session:
        assert session.scalars(sa.select(Paste.owner_id)).all() == [bob]
        assert session.scalar(sa.select(sa.func.count()).select_from(PasteFile)) == 1
