"""The second factor: codes checked against time steps, each code used once,
recovery codes, and turning TOTP on and off from the security page."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa

from srht_plugins.meta.models import RecoveryCode, User
from srht_plugins.meta.totp import matching_step

from .conftest import PASSWORD, Browser, MetaSite, signed_out, text

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


# -- matching a code to its time step (no database) ----------------------------------


def test_a_code_matches_its_step_and_one_either_side() -> None:
    totp = pyotp.TOTP(SECRET)
    at = 1_700_000_015.0  # step 56666667
    step = int(at) // 30
    assert matching_step(SECRET, totp.at(at), at=at) == step
    assert matching_step(SECRET, totp.at(at - 30), at=at) == step - 1
    assert matching_step(SECRET, totp.at(at + 30), at=at) == step + 1
    assert matching_step(SECRET, totp.at(at - 60), at=at) is None
    assert matching_step(SECRET, totp.at(at + 60), at=at) is None


@pytest.mark.parametrize(
    "at, code", [(59, "287082"), (1111111109, "081804"), (2000000000, "279037")]
)
def test_rfc_6238_test_vectors(at: int, code: str) -> None:
    # RFC 6238 appendix B (SHA-1), last six of the eight digits.
    rfc_secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of b"12345678901234567890"
    assert matching_step(rfc_secret, code, at=at) == at // 30


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_match_nothing(code: str) -> None:
    assert matching_step(SECRET, code, at=1_700_000_015.0) is None


def test_spaces_in_a_code_are_ignored() -> None:
    at = 1_700_000_015.0
    code = pyotp.TOTP(SECRET).at(at)
    assert matching_step(SECRET, f" {code[:3]} {code[3:]} ", at=at) == int(at) // 30


# -- through the pages -----------------------------------------------------------------


def enable_totp(site: MetaSite, browser: Browser) -> tuple[pyotp.TOTP, list[str]]:
    """Turn TOTP on with a code of the previous step (so the current and
    next steps stay free for the test); return the app and recovery codes."""
    page = text(browser.get("/security/totp"))
    secret = re.search(r"secret=([A-Z2-7]+)", page)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    shown = browser.submit("/security/totp", {"code": totp.at(time.time() - 30)})
    assert shown.status_code == 200, text(shown)
    codes = re.findall(r"<code>([0-9a-f]{8}-[0-9a-f]{8})</code>", text(shown))
    assert len(codes) == 10
    return totp, codes


@pytest.fixture
def alice(meta_site: MetaSite) -> Browser:
    meta_site.create_user("alice")
    browser = meta_site.browser()
    assert browser.login("alice").status_code == 302
    return browser


def user(site: MetaSite) -> Any:
    with site.db() as session:
        found = session.scalar(sa.select(User).where(User.username == "alice"))
        session.expunge(found)
        return found


@pytest.mark.postgres
def test_the_setup_secret_survives_a_reload_and_is_not_stored_until_confirmed(
    meta_site: MetaSite, alice: Browser
) -> None:
    first = re.search(r"secret=([A-Z2-7]+)", text(alice.get("/security/totp")))
    second = re.search(r"secret=([A-Z2-7]+)", text(alice.get("/security/totp")))
    assert first and second and first.group(1) == second.group(1)
    assert user(meta_site).totp_secret is None
    # The secret is not readable from the (signed, not encrypted) session cookie.
    cookie = alice.cookie("srht-meta-session") or ""
    assert first.group(1) not in cookie


@pytest.mark.postgres
@pytest.mark.slow
def test_a_code_works_once(meta_site: MetaSite, alice: Browser) -> None:
    totp, _codes = enable_totp(meta_site, alice)
    alice.submit("/logout", action="/logout")
    code = totp.at(time.time() + 30)
    alice.login("alice")
    assert alice.submit("/login/totp", {"code": code}).status_code == 302
    alice.submit("/logout", action="/logout")

    thief = meta_site.browser("203.0.113.9")
    thief.login("alice")
    replay = thief.submit("/login/totp", {"code": code})
    assert replay.status_code == 400 and "was used already" in text(replay)
    # The code used to turn TOTP on is spent too (it is older).
    assert thief.submit("/login/totp", {"code": totp.at(time.time() - 30)}).status_code == 400
    assert signed_out(thief)


@pytest.mark.postgres
@pytest.mark.slow
def test_wrong_codes_count_as_failed_logins(meta_make_site: Any) -> None:
    site = meta_make_site(meta={"login-attempts-per-account": 3})
    site.create_user("alice")
    browser = site.browser()
    browser.login("alice")
    totp, codes = enable_totp(site, browser)
    browser.submit("/logout", action="/logout")
    valid = {totp.at(time.time() + drift) for drift in (-30, 0, 30, 60)}
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444") if c not in valid]
    browser.login("alice")
    for code in wrong[:3]:
        assert browser.submit("/login/totp", {"code": code}).status_code == 400
    locked = browser.submit("/login/totp", {"code": codes[0]})
    assert locked.status_code == 400 and "Too many failed logins" in text(locked)
    assert signed_out(browser)
    with site.db() as session:
        unused = session.scalar(
            sa.select(sa.func.count(RecoveryCode.id)).where(RecoveryCode.used_at.is_(None))
        )
    assert unused == 10, "a locked account must not spend recovery codes"


@pytest.mark.postgres
@pytest.mark.slow
def test_new_recovery_codes_replace_the_old(meta_site: MetaSite, alice: Browser) -> None:
    _totp, old = enable_totp(meta_site, alice)
    refused = alice.submit(
        "/security", {"codes-password": "wrong"}, action="/security/totp/recovery-codes"
    )
    assert refused.status_code == 400 and "not right" in text(refused)
    fresh = alice.submit(
        "/security", {"codes-password": PASSWORD}, action="/security/totp/recovery-codes"
    )
    assert fresh.status_code == 200 and fresh.headers["Cache-Control"] == "no-store"
    new = re.findall(r"<code>([0-9a-f]{8}-[0-9a-f]{8})</code>", text(fresh))
    assert len(new) == 10 and not set(new) & set(old)

    alice.submit("/logout", action="/logout")
    alice.login("alice")
    assert alice.submit("/login/totp", {"code": old[0]}).status_code == 400
    assert alice.submit("/login/totp", {"code": new[0]}).status_code == 302


@pytest.mark.postgres
@pytest.mark.slow
def test_disabling_needs_a_code_or_the_password(meta_site: MetaSite, alice: Browser) -> None:
    totp, _codes = enable_totp(meta_site, alice)
    nothing = alice.submit("/security", {}, action="/security/totp/disable")
    assert nothing.status_code == 400 and "Enter a current code, or your password." in text(nothing)
    wrong = alice.submit(
        "/security", {"disable-password": "wrong"}, action="/security/totp/disable"
    )
    assert wrong.status_code == 400
    assert user(meta_site).totp_secret is not None

    done = alice.submit(
        "/security", {"disable-code": totp.at(time.time() + 30)}, action="/security/totp/disable"
    )
    assert done.status_code == 302
    off = user(meta_site)
    assert off.totp_secret is None
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(RecoveryCode.id))) == 0
    alice.submit("/logout", action="/logout")
    assert alice.login("alice").headers["Location"] == "/"
    log = text(alice.get("/audit-log"))
    assert "two-factor authentication disabled" in log
    assert (
        "Two-factor authentication is off" in meta_site.mail_to("alice@example.org")[-1]["Subject"]
    )
