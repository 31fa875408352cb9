"""The settings page of the webhooks that tell a user of their projects:
listed, added and removed with the page's forms (CSRF token included),
their deliveries shown and sent again; nobody else's webhook or delivery
can be named."""

from __future__ import annotations

import pytest

from srht_core import deliveries

pytestmark = [pytest.mark.postgres]

PAGE = "/settings/webhooks"


def test_the_owner_adds_sees_redelivers_and_removes_a_webhook(app, make_user, browser):
    alice = browser(make_user("alice"))
    alice.submit("/projects/create", {"name": "hello", "visibility": "public"})
    settings = alice.get("/~alice/hello/settings").text
    assert f'href="{PAGE}"' in settings  # a tab of every project's settings
    assert "No webhooks yet." in alice.get(PAGE).text

    wrong = alice.submit(PAGE, {"url": "ftp://hooks.example.org/x", "events": []})
    assert wrong.status_code == 400
    assert "Use an http:// or https:// URL." in wrong.text
    assert "No webhooks yet." in wrong.text  # nothing stored
    wrong = alice.submit(PAGE, {"url": "https://hooks.example.org/x", "events": ["repo:push"]})
    assert wrong.status_code == 400
    assert "&#39;repo:push&#39; is not one of the options." in wrong.text

    added = alice.submit(
        PAGE,
        {"url": "https://hooks.example.org/hub", "events": ["project:update"]},
        follow_redirects=True,
    )
    assert "Webhook to https://hooks.example.org/hub added." in added.text
    assert "<code>https://hooks.example.org/hub</code>" in added.text
    assert "Nothing delivered yet." in added.text

    alice.submit(
        "/~alice/hello/settings",
        {"name": "hello", "description": "Says hello", "visibility": "public"},
    )
    with app.app_context():
        [sent] = deliveries("user:1")
    page = alice.get(PAGE).text
    assert f'id="delivery-{sent.id}"' in page and "project:update" in page
    again = alice.submit(PAGE, action=f"/settings/deliveries/{sent.id}/redeliver")
    assert again.status_code == 302
    assert again.headers["Location"].endswith(f"{PAGE}#delivery-{sent.id}")

    remove = f"{PAGE}/1/delete"
    assert "Remove the webhook to https://hooks.example.org/hub?" in alice.get(remove).text
    gone = alice.submit(remove, {"confirmed": "yes"}, follow_redirects=True)
    assert "Webhook to https://hooks.example.org/hub removed." in gone.text
    assert "No webhooks yet." in gone.text
    assert f'id="delivery-{sent.id}"' in gone.text  # the log stays


def test_another_users_webhooks_and_deliveries_cannot_be_named(app, make_user, browser):
    alice, bob = make_user("alice"), make_user("bob")
    owner = browser(alice)
    owner.submit(PAGE, {"url": "https://hooks.example.org/a", "events": ["project:create"]})
    owner.submit("/projects/create", {"name": "hello", "visibility": "public"})
    with app.app_context():
        [sent] = deliveries("user:1")

    other = browser(bob)
    assert "hooks.example.org/a" not in other.get(PAGE).text
    assert other.get(f"{PAGE}/1/delete").status_code == 404
    token = other.csrf_token(PAGE)
    refused = other.post(f"/settings/deliveries/{sent.id}/redeliver", data={"csrf_token": token})
    assert refused.status_code == 404
    # Without the page's CSRF token, even the owner's own post is refused.
    assert owner.post(PAGE, data={"url": "https://x.example.org", "events": []}).status_code == 400
    assert owner.post(f"{PAGE}/1/delete", data={"confirmed": "yes"}).status_code == 400
    assert "hooks.example.org/a" in owner.get(PAGE).text
    signed_out = browser(None).get(PAGE)
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
