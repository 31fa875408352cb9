"""SSH and PGP public keys: parsing and fingerprints (checked against what
ssh-keygen and GnuPG print for the same keys), and the keys page: adding,
refusing, removing, and ``/~user.keys``."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from srht_plugins.meta.keys import KeyProblem, crc24, parse_pgp_key, parse_ssh_key
from srht_plugins.meta.models import PGPKey, SSHKey

from .conftest import Browser, MetaSite, text

# Made with ssh-keygen; the fingerprints are what `ssh-keygen -l` printed.
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjKbDOtgWX5Bw5wlS94rh3vJcD17ehkzbIkO8LHg8Yx "
    "test-ed25519@example"
)
ED25519_FP = "SHA256:xauxPXjsYwPMZUO5CiEykCE/JX/JIA9OOEItIwMihC0"
ECDSA384 = (
    "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBOlboxcR"
    "DxK/8H5xy+R5SAWfVOPnR/j/O6WWSH33HHJPomQVgyiGSPIJl3XuP6cMgi3/Y0EwyU56OJOO8MNfiRtfT"
    "vDk4kSVagI7kGOVxF58C1sZLwbkx526aFHf3dLMEQ== test-ecdsab384@example"
)
ECDSA384_FP = "SHA256:dIzw3sossUXsCfTYrlsb2CqDz9rOnF2iGx4WL618qK8"
RSA2048 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCowfyXyEDAi3Req9Eo48AKDim54BT9TRKHNBiM6g0+9KMU"
    "78t73zfVQFBGG0Gu4KudbZJLjmg8SU3sxC8MTDJ+qeXqxdF1qoxWIiFGgtFikLFIds3V/sJ7IOa6fGUtkNPM"
    "U4zHQYaBulzx3/XF/lzdtphw3VEEZLw/ld981Q5ysAovQKpyrRKDcz0WrF4lW9fYQI55hTFkTf4s+8fhkK1y"
    "E+y0s/sGOVzGPN3j1xae/ECQJXyyqpkP7hiJkb4aGaZDNGZMY7pPkawASeuxN3XQN3QBC+pdcq2CbaOisZSo"
    "Zce++p4yH3aAUIMDe9ut2nONIY90RWuITpmHrPtEQ691 test-rsab2048@example"
)
RSA2048_FP = "SHA256:wuxxZmdsD0KhUWJdwC63tIbCKenFEbpXuuuObutT5R0"
RSA1024 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDSOgI6HBbdB4yX1oJlWCi6rjen/svxcqsJDYw4BUGEnYeW"
    "53VsCOrPFzMtFo2B2Q9nuCDNYPOkvnVZOolcb3C4mOx7rbFdNzHT15Lh4wx8y9RXwGen9m4F/517A5Ra3kx5"
    "WNWDsxaFXJfV1RM6GXhuF+o1kxmXt8fnkNKwWl8bdw== test-rsab1024@example"
)
DSA = (
    "ssh-dss AAAAB3NzaC1kc3MAAACBAJLgtjGW1iATBSIsI/vBYOWGhHZ+yY/hQFDHdDitbkCTnLcu8aoFEP10NCS"
    "dHEw13i5lFcZhT/BUwSAbYjGgyg/NQpL1CVrbcyKF7MkkBsS+SZEpn1npoHD6aUBWPueLIhdBH/tFpI/TKhTbv4"
    "9z+pQ5zIpKADmcVJQOae3F0FDHAAAAFQDN+23o1OmDp/fQPj1rtsEljbQMoQAAAIA3VwI/aKx/b8nqmQeCk7lD"
    "MHRYkoxzO4JdewS2jIYo3Mbgj4KghBuOOQFAhQSWok3PInTZI3hhIRMY0tCClUX54VwM6oX+AenUWgPL0DhXOP"
    "CSOwXZ8L5prMMVQ46RgDrrjrd8P7QcWhqTREIDEjHkTK6c9f5srTYx6eOZYYf1wgAAAIBolnLas5shcRLsBRn+"
    "KTGiowN4i3MYtlEHauOWDE7TLa6R5VMdQYnXpxKqNrNRMH9NM2723JGOUYb+0CoIxWLRBgwUeoyjhPZT3mBlzR"
    "3fqwWS2Jhul3V+4H9Sv7I/ZYX05oBvGAc8HyCbnwcppcH6lBUlArorq0kNU4A86a8SjA== test-dsa@example"
)

# Made with GnuPG 2.2; the fingerprints are what `gpg --with-colons` printed.
# An Ed25519 primary key with a Curve25519 subkey (old-format packet headers).
PGP_ALICE = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEawVe1xYJKwYBBAHaRw8BAQdASkP0UEXofIIGQkcRSE4PKhaeQ/+pBKO3U6i/
IRS2xLu0HkFsaWNlIFRlc3QgPGFsaWNlQGV4YW1wbGUub3JnPoiQBBMWCAA4FiEE
uxC39MMfFhKORnUBNnOR36pqL1AFAmsFXtcCGwMFCwkIBwIGFQoJCAsCBBYCAwEC
HgECF4AACgkQNnOR36pqL1C/4gEA7zLRPtHBQoZqUOln3Q5o4+YVyl7N/qPIhwwv
F/ZozA4BALRNgMgGWKrQ/0uOifrxsdFr8TJCGY3NTIUIo6t0yUoKuDgEawVhgxIK
KwYBBAGXVQEFAQEHQAOuhchLDvhPT0BftoR9Quaao4ACjtJ+E+89pYyaaOdWAwEI
B4h4BBgWCAAgFiEEuxC39MMfFhKORnUBNnOR36pqL1AFAmsFYYMCGwwACgkQNnOR
36pqL1AO9wEA7lpuaqZZI8163UEQM7h/TXdkyThN28uYdK8HJUtqHq0A/1Ca0V8f
4KvSQ1Kkb8y6XXZrVSCOSM8rZRsR0lixaxAF
=UTO/
-----END PGP PUBLIC KEY BLOCK-----
"""
PGP_ALICE_FP = "BB10B7F4C31F16128E467501367391DFAA6A2F50"
# An RSA 2048 key: its packet has a two-octet old-format length.
PGP_BOB = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mQENBGsFXtcBCADMRJ8M29+R25yZ870aEImv0vviBx95Ms9rXt/BCBG+nAR2KsXN
Pkc1e+6QRWkYIfrK/0dZylHay6LvsvaeZ/HkFYXCI+k3WJI3CO7UIa4WE5A4I804
GnCCrblEg1PbC/gCTMqC+lVBaAuDg2IYStvELdy7T1ac8KR09X3MVi+HVmDDBF4I
yxmdfMMv5EKVm4Rnlgdwn313heFrxRf/UHtXnTwKeppItBUz+DiXodTZZIQXsYLm
iMOtr8sGqpghNthmIXdnGEpCp+nLthD8Cl9yJLed/hgHrhQMXAvN3iACeogI3G2c
M8TTRbZiwGOBVgxepvAgcu6v0fA9wYW0rbKlABEBAAG0FUJvYiA8Ym9iQGV4YW1w
bGUub3JnPokBTgQTAQoAOBYhBC8WxK2Mqgnmqx/1ggJ3Q9CEHDq1BQJrBV7XAhsD
BQsJCAcCBhUKCQgLAgQWAgMBAh4BAheAAAoJEAJ3Q9CEHDq1BiMH/1yRyKWHkDwZ
Ju1o6xweNeTgGsIyZanaHikWt1nFUtTQwkc6t1Rj8v6bWQtEmVeyJJiVmscSCMfy
ENBgSMZ/X97my733UrNEB0UvqrnV48f9sGZKLraM6aUvRlFl4sNA0q0j2F5kE0BK
EpV9cuv+2EN/6ZMzYsdJptGFhUXOIn8IJqMu7uSseBh5VoNasBHsmDnV8CffdbAr
/KJ6jcepL5FEOd0ViR++RvLZIqGwH598wqqi2EEXmaxTtkOxP5Pt8LC8jIOCTZRs
SDfXPgPKKKnyXFZZWVmt1YTx8OSZGSM4kMeY2ATSOQFq9Chf3zzB670NPoiGdERL
Ztfw+JLa3vI=
=WUOG
-----END PGP PUBLIC KEY BLOCK-----
"""
PGP_BOB_FP = "2F16C4AD8CAA09E6AB1FF582027743D0841C3AB5"


def armor_body(block: str) -> bytes:
    lines = block.strip().splitlines()
    return base64.b64decode("".join(line for line in lines[2:-1] if not line.startswith("=")))


def armor(data: bytes, *, checksum: bool = True, headers: str = "") -> str:
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    if checksum:
        lines.append("=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode())
    return "\n".join(
        [
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
            *headers.splitlines(),
            "",
            *lines,
            "-----END PGP PUBLIC KEY BLOCK-----",
            "",
        ]
    )


def first_packet(block: str) -> tuple[int, bytes, bytes]:
    """(tag, body, the rest) of a block whose first packet has an old-format header."""
    data = armor_body(block)
    size = 1 << (data[0] & 3)
    length = int.from_bytes(data[1 : 1 + size], "big")
    start = 1 + size
    return (data[0] >> 2) & 0x0F, data[start : start + length], data[start + length :]


# -- SSH keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, fingerprint, key_type, bits",
    [
        (ED25519, ED25519_FP, "ssh-ed25519", 256),
        (ECDSA384, ECDSA384_FP, "ecdsa-sha2-nistp384", 384),
        (RSA2048, RSA2048_FP, "ssh-rsa", 2048),
    ],
)
def test_ssh_fingerprints_match_ssh_keygen(
    line: str, fingerprint: str, key_type: str, bits: int
) -> None:
    key = parse_ssh_key(f"  {line}\n")
    assert (key.fingerprint, key.key_type, key.bits) == (fingerprint, key_type, bits)
    assert key.comment == line.split()[2]
    assert key.key == " ".join(line.split()[:2])


def test_a_comment_may_have_spaces_and_may_be_missing() -> None:
    body = " ".join(ED25519.split()[:2])
    assert parse_ssh_key(body + "  Alice's laptop (work) ").comment == "Alice's laptop (work)"
    assert parse_ssh_key(body).comment is None


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "Paste a public key"),
        ("hello world", "does not look like an SSH public key"),
        ("ssh-ed25519", "does not look like an SSH public key"),
        (RSA1024, "That RSA key has 1024 bits; at least 2048 are needed."),
        (DSA, "Keys of type ssh-dss are not accepted"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjKbDOtgWX5Bw5wlS94rh3vJcD17ehkzbIkO8LH", "damaged"),
        ("ssh-ed25519 not*base64!", "damaged"),
        # The blob says ssh-rsa; the line claims ed25519.
        ("ssh-ed25519 " + RSA2048.split()[1], "damaged"),
        (ED25519 + "\n" + RSA2048, "Paste one key, on one line."),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
            "-----END OPENSSH PRIVATE KEY-----",
            "That is a private key.",
        ),
        ("ssh-ed25519 AAAA" + "A" * 9000, "too long"),
        (" ".join(ED25519.split()[:2]) + " " + "c" * 300, "comment is too long"),
    ],
)
def test_bad_ssh_keys_are_refused_with_a_reason(line: str, message: str) -> None:
    with pytest.raises(KeyProblem, match=re.escape(message)):
        parse_ssh_key(line)


def _require(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{program} is required under CI=true")
        pytest.skip(f"{program} is not installed")
    return found


@pytest.mark.parametrize(
    "private",
    [
        lambda: ed25519.Ed25519PrivateKey.generate(),
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    ],
    ids=["ed25519", "nistp256", "nistp521", "rsa3072"],
)
def test_fresh_keys_get_the_fingerprint_ssh_keygen_gives(private: Any, tmp_path: Path) -> None:
    keygen = _require("ssh-keygen")
    line = (
        private()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    (tmp_path / "key.pub").write_text(line + " me@here\n")
    printed = subprocess.run(
        [keygen, "-l", "-f", str(tmp_path / "key.pub")], capture_output=True, text=True, check=True
    ).stdout.split()
    key = parse_ssh_key(line + " me@here")
    assert key.fingerprint == printed[1] and key.bits == int(printed[0])


# -- PGP keys ------------------------------------------------------------------------------


def test_pgp_fingerprints_match_gnupg() -> None:
    alice = parse_pgp_key(PGP_ALICE)
    assert (alice.fingerprint, alice.version, alice.key_id) == (PGP_ALICE_FP, 4, PGP_ALICE_FP[-16:])
    assert parse_pgp_key(PGP_BOB).fingerprint == PGP_BOB_FP


def test_the_armor_checksum_is_crc24() -> None:
    assert base64.b64encode(crc24(armor_body(PGP_BOB)).to_bytes(3, "big")) == b"WUOG"


def test_text_around_the_block_and_armor_headers_are_fine() -> None:
    data = armor_body(PGP_ALICE)
    pasted = (
        "Here is my key:\n\n"
        + armor(data, headers="Version: GnuPG v2\nComment: mine")
        + "\nThanks!"
    )
    key = parse_pgp_key(pasted.replace("\n", "\r\n"))
    assert key.fingerprint == PGP_ALICE_FP
    assert key.armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\nVersion: GnuPG v2")
    assert key.armored.endswith("-----END PGP PUBLIC KEY BLOCK-----\n")
    assert parse_pgp_key(armor(data, checksum=False)).fingerprint == PGP_ALICE_FP


@pytest.mark.parametrize("length_octets", [1, 2, 5])
def test_new_format_packet_headers_give_the_same_fingerprint(length_octets: int) -> None:
    tag, body, rest = first_packet(PGP_BOB)
    assert tag == 6
    size = len(body)
    if length_octets == 1:
        # A one-octet length cannot say 269; use a truncated packet body
        # instead, the fingerprint of which we compute the same way here.
        body = body[:150]
        header = bytes([0xC0 | tag, len(body)])
    elif length_octets == 2:
        header = bytes([0xC0 | tag, ((size - 192) >> 8) + 192, (size - 192) & 0xFF])
    else:
        header = bytes([0xC0 | tag, 0xFF]) + size.to_bytes(4, "big")
    key = parse_pgp_key(armor(header + body + rest))
    old_style = bytes([0x99]) + len(body).to_bytes(2, "big") + body
    assert key.fingerprint == parse_pgp_key(armor(old_style + rest)).fingerprint
    if length_octets != 1:
        assert key.fingerprint == PGP_BOB_FP


def test_v6_keys_get_a_sha256_fingerprint() -> None:
    import hashlib

    _tag, body, _rest = first_packet(PGP_ALICE)
    v6 = bytes([6]) + body[1:6] + len(body[6:]).to_bytes(4, "big") + body[6:]
    key = parse_pgp_key(armor(bytes([0xC6, len(v6)]) + v6))
    expected = hashlib.sha256(b"\x9b" + len(v6).to_bytes(4, "big") + v6).hexdigest().upper()
    assert (key.version, key.fingerprint, key.key_id) == (6, expected, expected[:16])


def _secret_key_block() -> str:
    _tag, body, rest = first_packet(PGP_ALICE)
    return armor(bytes([0x80 | (5 << 2), len(body)]) + body + rest)


@pytest.mark.parametrize(
    "block, message",
    [
        ("", "Paste an ASCII-armored public key"),
        ("mDMEawVe1xYJKwYBBAHaRw8BAQdASkP0UEXofIIGQkcRSE4PKhaeQ", "Paste an ASCII-armored"),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlFgEawVe1xYJ\n"
            "-----END PGP PRIVATE KEY BLOCK-----",
            "That is a private key.",
        ),
        (_secret_key_block(), "That is a private key."),
        (PGP_ALICE.replace("-----END PGP PUBLIC KEY BLOCK-----", ""), "cut short"),
        (PGP_ALICE.replace("=UTO/", "=AAAA"), "checksum does not match"),
        (PGP_ALICE.replace("mDMEawVe", "mDME!wVe"), "not valid base64"),
        (PGP_ALICE.replace("B4h4BBgWCAAgFiEE", "B4h4BBgWCAAgFiE"), "not valid base64"),
        (armor(armor_body(PGP_ALICE)[:20]), "first packet is cut short"),
        (armor(b"\x00\x01\x02"), "does not hold OpenPGP data"),
        (armor(bytes([0xC6, 0xE1]) + b"\x04" * 10), "partial length"),
        (armor(bytes([0xB4, 0x05]) + b"alice"), "does not start with a public key"),
        (armor(bytes([0x98, 0x08, 3]) + b"\x00" * 7), "Version 3 PGP keys are not accepted"),
        (armor(b"\x99" + b"\x00" * 70000), "too long"),
    ],
)
def test_bad_pgp_keys_are_refused_with_a_reason(block: str, message: str) -> None:
    with pytest.raises(KeyProblem, match=re.escape(message)):
        parse_pgp_key(block)


# -- the keys page ----------------------------------------------------------------------------


def signed_in(site: MetaSite, username: str) -> Browser:
    site.create_user(username)
    browser = site.browser()
    assert browser.login(username).status_code == 302
    return browser


def add_ssh(browser: Browser, key: str) -> Any:
    return browser.submit("/keys", {"ssh-key": key}, action="/keys/ssh")


def add_pgp(browser: Browser, key: str) -> Any:
    return browser.submit("/keys", {"pgp-key": key}, action="/keys/pgp")


def count(site: MetaSite, model: Any) -> int:
    with site.db() as session:
        return int(session.scalar(sa.select(sa.func.count(model.id))) or 0)


@pytest.mark.postgres
def test_ssh_keys_are_added_listed_served_and_removed(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    assert add_ssh(alice, ED25519).status_code == 302
    assert add_ssh(alice, RSA2048).status_code == 302
    page = text(alice.get("/keys"))
    assert ED25519_FP in page and RSA2048_FP in page and "test-ed25519@example" in page
    served = meta_site.browser().get("/~alice.keys")
    assert served.mimetype == "text/plain"
    assert served.get_data(as_text=True) == (
        " ".join(ED25519.split()[:2]) + "\n" + " ".join(RSA2048.split()[:2]) + "\n"
    )

    with meta_site.db() as session:
        key_id = session.scalar(sa.select(SSHKey.id).where(SSHKey.fingerprint == ED25519_FP))
    assert alice.submit(f"/keys/ssh/{key_id}/delete").status_code == 302
    assert f"<code>{ED25519_FP}</code>" not in text(alice.get("/keys"))
    assert meta_site.browser().get("/~alice.keys").get_data(as_text=True).startswith("ssh-rsa")
    log = text(alice.get("/audit-log"))
    assert "SSH key added" in log and "SSH key removed" in log and ED25519_FP in log


@pytest.mark.postgres
@pytest.mark.parametrize(
    "key, message",
    [
        ("ssh-ed25519 AAAA", "damaged"),
        (RSA1024, "That RSA key has 1024 bits"),
        ("ssh-rsa " + "A" * 9000, "too long for an SSH public key"),
        ("", "This field is required."),
    ],
)
def test_bad_ssh_keys_are_refused_and_nothing_is_stored(
    meta_site: MetaSite, key: str, message: str
) -> None:
    alice = signed_in(meta_site, "alice")
    answer = add_ssh(alice, key)
    assert answer.status_code == 400 and message in text(answer)
    assert count(meta_site, SSHKey) == 0


@pytest.mark.postgres
def test_a_key_belongs_to_one_account(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    bob = signed_in(meta_site, "bob")
    assert add_ssh(alice, ED25519).status_code == 302
    twice = add_ssh(alice, ED25519)
    assert twice.status_code == 400 and "You have added this key already." in text(twice)
    taken = add_ssh(bob, ED25519.replace("test-ed25519@example", "bob's copy"))
    assert taken.status_code == 400 and "in use by another account" in text(taken)
    assert count(meta_site, SSHKey) == 1
    assert meta_site.browser().get("/~bob.keys").get_data(as_text=True) == ""

    assert add_pgp(alice, PGP_ALICE).status_code == 302
    pgp = add_pgp(bob, PGP_ALICE)
    assert pgp.status_code == 400 and "in use by another account" in text(pgp)
    assert count(meta_site, PGPKey) == 1


@pytest.mark.postgres
def test_another_users_keys_cannot_be_removed(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    add_ssh(alice, ED25519)
    add_pgp(alice, PGP_ALICE)
    with meta_site.db() as session:
        ssh_id = session.scalar(sa.select(SSHKey.id))
        pgp_id = session.scalar(sa.select(PGPKey.id))
    bob = signed_in(meta_site, "bob")
    token = bob.csrf_token()
    for path in (
        f"/keys/ssh/{ssh_id}/delete",
        f"/keys/pgp/{pgp_id}/delete",
        "/keys/ssh/424242/delete",
    ):
        assert bob.post(path, data={"csrf_token": token}).status_code == 404, path
    assert ED25519_FP not in text(bob.get("/keys"))
    assert (count(meta_site, SSHKey), count(meta_site, PGPKey)) == (1, 1)


@pytest.mark.postgres
def test_pgp_keys_are_added_shown_and_removed(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    assert add_pgp(alice, PGP_ALICE).status_code == 302
    page = text(alice.get("/keys"))
    assert "BB10 B7F4 C31F 1612 8E46 7501 3673 91DF AA6A 2F50" in page
    with meta_site.db() as session:
        stored = session.scalar(sa.select(PGPKey))
        assert stored is not None and stored.key == PGP_ALICE
    assert alice.submit(f"/keys/pgp/{stored.id}/delete").status_code == 302
    assert count(meta_site, PGPKey) == 0


@pytest.mark.postgres
@pytest.mark.parametrize(
    "block, message",
    [
        (_secret_key_block(), "That is a private key."),
        (PGP_ALICE.replace("=UTO/", "=AAAA"), "checksum does not match"),
        ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + "QUFB\n" * 14000, "too long"),
    ],
)
def test_bad_pgp_keys_are_refused_and_nothing_is_stored(
    meta_site: MetaSite, block: str, message: str
) -> None:
    alice = signed_in(meta_site, "alice")
    answer = add_pgp(alice, block)
    assert answer.status_code == 400 and message in text(answer)
    assert count(meta_site, PGPKey) == 0
