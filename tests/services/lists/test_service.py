"""lists as a service of the site: its migration matches its models on
PostgreSQL and on SQLite (the embedded default), its plugin declares what
the core and the deploy read, and a deleted account takes its lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import srht_plugins.lists as lists_plugin
from srht_core import state_of
from srht_plugins.lists.models import Base

from .conftest import DOMAIN, message


def _differences(engine: Any) -> list[Any]:
    own = set(Base.metadata.tables)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, kind, _parents: kind != "table" or name in own,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, Base.metadata))


@pytest.mark.postgres
def test_the_migration_matches_the_models_on_postgresql(site: Any) -> None:
    assert _differences(site.db.engine) == []


def test_the_migration_matches_the_models_on_sqlite(
    register_plugin: Any, make_config: Any, make_app: Any, tmp_path: Path
) -> None:
    import srht_plugins.meta as meta_plugin

    register_plugin(meta_plugin, "meta")
    register_plugin(lists_plugin, "lists")
    config = make_config(
        {
            "lists": {"connection-string": f"sqlite:///{tmp_path / 'lists.db'}"},
            "meta": {"connection-string": f"sqlite:///{tmp_path / 'meta.db'}"},
        }
    )
    app = make_app("lists", config)
    assert _differences(state_of(app).db.engine) == []


def test_the_plugin_declares_its_listener_to_the_deploy_and_to_srht_up(make_config: Any) -> None:
    config = make_config(
        {"lists": {"smtp-bind": "127.0.0.1:2600", "posting-domain": "lists.example.org"}}
    )
    from srht_core import PluginHost

    host = PluginHost(discover=False)
    host.register(lists_plugin, "lists")
    config.bind(host.config_schemas()[0])
    needs = lists_plugin.host_needs(config)
    assert needs.daemons == {"lmtp": "srht lists lmtp"}
    assert 25 in needs.ports
    # The deploy installs Postfix and passes the posting domain's mail on.
    assert needs.mail_domains == {"lists.example.org": "127.0.0.1:8025"}
    assert needs.mail_max_size == 26214400
    [smtp] = lists_plugin.dev_daemons(config)
    assert (smtp.name, smtp.command, smtp.address) == ("smtp", ("lists", "smtp"), "127.0.0.1:2600")


@pytest.mark.postgres
def test_a_deleted_account_takes_its_lists_and_leaves_its_posts(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.mailing_list(alice, "devel")
    site.mailing_list(bob, "own")
    to = f"~alice/devel@{DOMAIN}"
    assert site.deliver(message("From bob", sender="bob@example.org", to=to), to).startswith("250")
    with site.context():
        from srht_core import db_session
        from srht_plugins.lists.models import User

        lists_plugin.user_deleted(db_session.get(User, bob.id))
        db_session.commit()
    assert site.api().get("/lists/bob/own").status_code == 404
    [kept] = site.emails()
    assert kept.sender_address == "bob@example.org"
    assert site.browser().get("/~alice/devel").status_code == 200
