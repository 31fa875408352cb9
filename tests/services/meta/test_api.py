"""meta's REST API as a program uses it: the token owner's profile and
public keys, paged like every list of the site, each write checked against
its declared schema (a 400 naming the field, nothing stored); and the
internal API the other services rely on, unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from srht_core import db_session
from srht_core.sealing import INTERNAL_HEADER, seal

from .conftest import MetaSite
from .test_keys import ECDSA384, ECDSA384_FP, ED25519, ED25519_FP, PGP_ALICE, PGP_ALICE_FP, RSA2048

pytestmark = pytest.mark.postgres


class Api:
    """A program calling meta's API with a token."""

    def __init__(self, site: MetaSite, token: str | None):
        self.client = site.app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get("/api" + path, headers=self.headers, **kwargs)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post("/api" + path, json=body, headers=self.headers)

    def delete(self, path: str) -> Any:
        return self.client.delete("/api" + path, headers=self.headers)


def token(site: MetaSite, username: str, scopes: str) -> str:
    from srht_plugins.meta.accounts import find_user
    from srht_plugins.meta.tokens import issue_personal_token

    with site.app.test_request_context(method="POST"):
        user = find_user(username)
        assert user is not None
        issued = issue_personal_token(user, scopes)
        db_session.commit()
        return issued


@pytest.fixture
def alice(meta_site: MetaSite) -> Api:
    meta_site.create_user("alice")
    return Api(meta_site, token(meta_site, "alice", "meta/profile:RO meta/keys:RW"))


def count(site: MetaSite, model: Any) -> int:
    with site.db() as session:
        return int(session.scalar(sa.select(sa.func.count(model.id))) or 0)


def test_the_profile_needs_the_profile_scope(meta_site: MetaSite, alice: Api) -> None:
    profile = alice.get("/user")
    assert profile.status_code == 200
    assert profile.json["username"] == "alice" and profile.json["email"] == "alice@example.org"
    keys_only = Api(meta_site, token(meta_site, "alice", "meta/keys:RO"))
    refused = keys_only.get("/user")
    assert refused.status_code == 403
    assert refused.json == {"errors": [{"reason": "the token lacks the scope meta/profile:RO"}]}
    anonymous = Api(meta_site, None).get("/user")
    assert anonymous.status_code == 401


def test_ssh_keys_are_added_listed_paged_and_removed(meta_site: MetaSite, alice: Api) -> None:
    from srht_plugins.meta.models import SSHKey

    added = alice.post("/ssh-keys", {"key": ED25519})
    assert added.status_code == 201
    assert added.json["fingerprint"] == ED25519_FP
    assert added.json["comment"] == "test-ed25519@example"
    assert alice.post("/ssh-keys", {"key": ECDSA384}).status_code == 201
    assert alice.post("/ssh-keys", {"key": RSA2048}).status_code == 201

    first = alice.get("/ssh-keys", query_string={"limit": 2})
    assert first.status_code == 200 and set(first.json) == {"results", "next"}
    assert [k["fingerprint"] for k in first.json["results"]] == [ED25519_FP, ECDSA384_FP]
    rest = alice.get("/ssh-keys", query_string={"limit": 2, "cursor": first.json["next"]})
    assert len(rest.json["results"]) == 1 and rest.json["next"] is None

    key_id = added.json["id"]
    assert alice.get(f"/ssh-keys/{key_id}").json == added.json
    assert alice.delete(f"/ssh-keys/{key_id}").status_code == 204
    assert alice.get(f"/ssh-keys/{key_id}").status_code == 404
    assert count(meta_site, SSHKey) == 2
    assert ED25519.split()[1] not in meta_site.browser().get("/~alice.keys").get_data(as_text=True)
    log = meta_site.browser()
    log.login("alice")
    page = log.get("/audit-log").get_data(as_text=True)
    assert f"{ED25519_FP} (by the API)" in page and "SSH key removed" in page


def test_pgp_keys_are_added_listed_and_removed(meta_site: MetaSite, alice: Api) -> None:
    from srht_plugins.meta.models import PGPKey

    added = alice.post("/pgp-keys", {"key": PGP_ALICE})
    assert added.status_code == 201 and added.json["fingerprint"] == PGP_ALICE_FP
    listed = alice.get("/pgp-keys").json
    assert listed == {"results": [added.json], "next": None}
    assert alice.delete(f"/pgp-keys/{added.json['id']}").status_code == 204
    assert count(meta_site, PGPKey) == 0


@pytest.mark.parametrize(
    "path, body, field, reason",
    [
        ("/ssh-keys", {}, "key", "is required"),
        ("/ssh-keys", {"key": 42}, "key", "must be a string"),
        ("/ssh-keys", {"key": ""}, "key", "must not be empty"),
        ("/ssh-keys", {"key": "x" * 8193}, "key", "must be at most 8192 characters long"),
        ("/ssh-keys", {"key": ED25519, "comment": "x"}, "comment", "is not a field here"),
        ("/ssh-keys", {"key": "ssh-ed25519 AAAA"}, "key", "damaged"),
        ("/ssh-keys", {"key": "ssh-ed25519 AAAA\x00"}, "key", "NUL characters"),
        ("/pgp-keys", {"key": "x" * 65537}, "key", "must be at most 65536 characters long"),
        ("/pgp-keys", {"key": "not a key"}, "key", "ASCII-armored public key"),
        ("/pgp-keys", [], "body", "must be an object"),
    ],
)
def test_a_body_that_breaks_the_schema_is_a_400_naming_the_field_and_stores_nothing(
    meta_site: MetaSite, alice: Api, path: str, body: Any, field: str, reason: str
) -> None:
    from srht_plugins.meta.models import AuditLogEntry, PGPKey, SSHKey

    before = count(meta_site, AuditLogEntry)
    answer = alice.post(path, body)
    assert answer.status_code == 400, answer.json
    errors = answer.json["errors"]
    assert any(e.get("field") == field and reason in e["reason"] for e in errors), errors
    assert count(meta_site, SSHKey) == count(meta_site, PGPKey) == 0
    assert count(meta_site, AuditLogEntry) == before


def test_a_key_on_an_account_already_is_a_conflict(meta_site: MetaSite, alice: Api) -> None:
    meta_site.create_user("bob")
    bob = Api(meta_site, token(meta_site, "bob", "meta/keys:RW"))
    assert alice.post("/ssh-keys", {"key": ED25519}).status_code == 201
    again = alice.post("/ssh-keys", {"key": ED25519})
    assert again.status_code == 409
    assert again.json["errors"] == [{"field": "key", "reason": "You have added this key already."}]
    taken = bob.post("/ssh-keys", {"key": ED25519})
    assert taken.status_code == 409 and "another account" in taken.json["errors"][0]["reason"]


def test_another_users_keys_do_not_exist(meta_site: MetaSite, alice: Api) -> None:
    from srht_plugins.meta.models import SSHKey

    key_id = alice.post("/ssh-keys", {"key": ED25519}).json["id"]
    meta_site.create_user("bob")
    bob = Api(meta_site, token(meta_site, "bob", "meta/keys:RW"))
    assert bob.get(f"/ssh-keys/{key_id}").status_code == 404
    assert bob.delete(f"/ssh-keys/{key_id}").status_code == 404
    assert bob.get("/ssh-keys").json == {"results": [], "next": None}
    assert count(meta_site, SSHKey) == 1


def test_reading_keys_cannot_change_them(meta_site: MetaSite, alice: Api) -> None:
    key_id = alice.post("/ssh-keys", {"key": ED25519}).json["id"]
    reader = Api(meta_site, token(meta_site, "alice", "meta/keys:RO"))
    assert reader.get("/ssh-keys").status_code == 200
    refused = reader.post("/ssh-keys", {"key": ECDSA384})
    assert refused.status_code == 403 and "meta/keys:RW" in refused.json["errors"][0]["reason"]
    assert reader.delete(f"/ssh-keys/{key_id}").status_code == 403


def test_the_openapi_document_lists_every_operation(meta_site: MetaSite) -> None:
    document = meta_site.app.test_client().get("/api/openapi.json").json
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("get", "/api/user"),
        ("get", "/api/ssh-keys"),
        ("post", "/api/ssh-keys"),
        ("get", "/api/ssh-keys/{key_id}"),
        ("delete", "/api/ssh-keys/{key_id}"),
        ("get", "/api/pgp-keys"),
        ("post", "/api/pgp-keys"),
        ("get", "/api/pgp-keys/{key_id}"),
        ("delete", "/api/pgp-keys/{key_id}"),
    }
    create = document["components"]["schemas"]["SSHKeyCreate"]
    assert create["additionalProperties"] is False
    assert create["properties"]["key"]["maxLength"] == 8192


# -- the internal API: a contract with every other service ----------------------------------


def internal(
    site: MetaSite, path: str, *, caller: str = "listener", to: str = "meta", body: Any = None
) -> Any:
    with site.app.app_context():
        credential = seal({"from": caller, "to": to})
    client = site.app.test_client()
    if body is not None:
        return client.post(path, json=body, headers={INTERNAL_HEADER: credential})
    return client.get(path, headers={INTERNAL_HEADER: credential})


def test_the_internal_api_keeps_its_paths_and_shapes(meta_site: MetaSite, alice: Api) -> None:
    alice_id = alice.get("/user").json["id"]
    profile = internal(meta_site, f"/internal/users/{alice_id}")
    assert profile.status_code == 200
    assert set(profile.json) == {
        "id",
        "canonical_name",
        "username",
        "email",
        "user_type",
        "suspension_notice",
        "name",
        "url",
        "location",
        "bio",
        "created",
    }
    assert internal(meta_site, "/internal/users/424242").status_code == 404

    alice.post("/ssh-keys", {"key": ED25519})
    key = internal(meta_site, f"/internal/ssh-keys?fingerprint={ED25519_FP}")
    assert key.status_code == 200
    assert set(key.json) == {"fingerprint", "key", "user"}
    assert key.json["user"]["username"] == "alice"
    assert internal(meta_site, "/internal/ssh-keys?fingerprint=SHA256:none").status_code == 404

    revoked = internal(meta_site, "/internal/tokens/revoked?since=0")
    assert revoked.status_code == 200 and set(revoked.json) == {"revoked", "now"}

    asked = {"user": alice_id, "scopes": ["meta/profile:RO"]}
    delegated = internal(meta_site, "/internal/tokens/delegate", body=asked)
    assert delegated.status_code == 200 and set(delegated.json) == {"token", "expires"}
    acting = Api(meta_site, delegated.json["token"])
    assert acting.get("/user").json["username"] == "alice"
    assert acting.get("/ssh-keys").status_code == 403  # only the scopes asked for
    for bad, status in (
        ({"user": alice_id, "scopes": ["meta/nothing:RO"]}, 400),
        ({"user": alice_id, "scopes": "meta/profile:RO"}, 400),
        ({"user": 424242, "scopes": ["meta/profile:RO"]}, 404),
    ):
        refused = internal(meta_site, "/internal/tokens/delegate", body=bad)
        assert refused.status_code == status, refused.data
        if status == 400:
            assert refused.json["errors"][0]["reason"]
    # Without a credential for meta, or from elsewhere, it does not exist.
    assert meta_site.app.test_client().get(f"/internal/users/{alice_id}").status_code == 404
    assert internal(meta_site, f"/internal/users/{alice_id}", to="todo").status_code == 404
