"""debian/copyright's vendored part: one DEP-5 stanza per vendored wheel
(servers' and installer's), with the copyright lines and license read from
the wheel's METADATA and license files, and one standalone License
paragraph per license named. Offline: it reads the wheels ``deps.py fetch``
put in a folder. Used by ``deps.py`` (``lock``, ``check``, ``copyright DIR``).
"""

from __future__ import annotations

import re
import sys
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
VENDOR_LIST = HERE / "vendor.txt"
INSTALLER_VENDOR_LIST = HERE / "vendor-installer.txt"
#: The folder under a wheels folder that holds the installer's wheels.
INSTALLER_WHEELS = "installer"

# -- debian/copyright: the vendored distributions' copyright and licenses ------

#: The Debian copyright file; its vendored part is generated (below).
COPYRIGHT = HERE / "debian" / "copyright"
#: Per list: where the build puts its wheels in the source tree (build-debs,
#: debian/rules), where they are installed, and the folder under ``DIR``.
COPYRIGHT_SETS = (
    (VENDOR_LIST, "vendor", "/usr/lib/srht/vendor", ""),
    (INSTALLER_VENDOR_LIST, "vendor/installer", "/usr/lib/srht/installer-vendor", INSTALLER_WHEELS),
)

_PERMISSION = "Permission is hereby granted, free of charge"
_KEEP_NOTICE = "The above copyright notice and this permission notice shall be included"
_REDISTRIBUTION = "Redistribution and use in source and binary forms"

#: The licenses (SPDX short names, as DEP-5 recommends) we can state, and how
#: each one's text is recognised in a license file (whitespace collapsed).
#: What a wheel's metadata claims must be found this way in its license
#: files (or be explained in LICENSE_OVERRIDES): a license name outside this
#: table fails ``lock``/``check`` until its fingerprint is added here.
LICENSE_TEXTS: dict[str, Callable[[str], bool]] = {
    "Apache-2.0": lambda text: "Apache License" in text and "Version 2.0" in text,
    "BSD-2-Clause": lambda text: _REDISTRIBUTION in text and "endorse or promote" not in text,
    "BSD-3-Clause": lambda text: _REDISTRIBUTION in text and "endorse or promote" in text,
    "CC-BY-3.0": lambda text: "CC-BY-3.0" in text,
    "LGPL-2.1-or-later": lambda text: "GNU LESSER GENERAL PUBLIC LICENSE Version 2.1" in text,
    "MIT": lambda text: _PERMISSION in text and _KEEP_NOTICE in text,
    "MIT-0": lambda text: _PERMISSION in text and _KEEP_NOTICE not in text,
    "PSF-2.0": lambda text: "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in text,
    "Unlicense": lambda text: (
        "This is free and unencumbered software released into the public domain" in text
    ),
}

#: Licenses whose text Debian ships in /usr/share/common-licenses: their
#: standalone paragraph points there (Debian policy 12.5) instead of copying it.
COMMON_LICENSES = {
    "Apache-2.0": (
        'Licensed under the Apache License, Version 2.0 (the "License"); you may not\n'
        "use this file except in compliance with the License. You may obtain a copy\n"
        "of the License at http://www.apache.org/licenses/LICENSE-2.0\n\n"
        "Unless required by applicable law or agreed to in writing, software\n"
        'distributed under the License is distributed on an "AS IS" BASIS, WITHOUT\n'
        "WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the\n"
        "License for the specific language governing permissions and limitations\n"
        "under the License.\n\n"
        "On Debian systems, the complete text of the Apache License, Version 2.0,\n"
        "can be found in /usr/share/common-licenses/Apache-2.0."
    ),
    "LGPL-2.1-or-later": (
        "This library is free software; you can redistribute it and/or modify it\n"
        "under the terms of the GNU Lesser General Public License as published by\n"
        "the Free Software Foundation; either version 2.1 of the License, or (at\n"
        "your option) any later version.\n\n"
        "This library is distributed in the hope that it will be useful, but\n"
        "WITHOUT ANY WARRANTY; without even the implied warranty of\n"
        "MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU Lesser\n"
        "General Public License for more details.\n\n"
        "On Debian systems, the complete text of the GNU Lesser General Public\n"
        "License, version 2.1, can be found in /usr/share/common-licenses/LGPL-2.1."
    ),
}

#: Licenses no wheel carries the text of, with the text we state instead.
#: CC-BY-3.0: werkzeug's debugger icons (see LICENSE_OVERRIDES); its
#: ICON_LICENSE.md only links to the license.
OTHER_LICENSE_TEXTS = {
    "CC-BY-3.0": (
        "Creative Commons Attribution 3.0 Unported (the icons may also be used\n"
        "under Creative Commons Attribution 2.5, at the licensee's choice).\n"
        "The full text is at https://creativecommons.org/licenses/by/3.0/legalcode\n"
        "(it is not shipped with the wheel, nor in /usr/share/common-licenses)."
    ),
}

#: ``License:`` values and the last part of ``License ::`` classifiers
#: (lower case) that name exactly one license. "BSD", "BSD License" (how
#: many clauses?), "Apache Software License" (which version?) do not.
LICENSE_NAMES = {
    "apache 2": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "mit": "MIT",
    "mit license": "MIT",
    "mit-0": "MIT-0",
    "mit no attribution license (mit-0)": "MIT-0",
    "psf-2.0": "PSF-2.0",
    "unlicense": "Unlicense",
    "the unlicense (unlicense)": "Unlicense",
}


@dataclass(frozen=True)
class Override:
    """What a wheel's metadata and license files do not say (or say
    ambiguously), and why we know better."""

    reason: str
    #: DEP-5 license expression replacing the metadata's.
    license: str = ""
    #: Holders the license files do not name (found in the sources).
    copyright: tuple[str, ...] = ()
    #: Licenses of ``license`` whose text is not in the wheel's license
    #: files (``reason`` says where it is).
    elsewhere: tuple[str, ...] = ()


_BSD3 = (
    'its metadata says only "BSD" (License and/or classifier); its license file is '
    "the 3-clause text"
)

#: Explicit answers where metadata is ambiguous or incomplete, with the
#: reason for each. A distribution whose license cannot be determined from
#: its metadata fails ``lock`` and ``check`` until it has an entry here; so
#: does one with license files outside its .dist-info folder.
LICENSE_OVERRIDES: dict[str, Override] = {
    "amqp": Override(_BSD3, "BSD-3-Clause"),
    "billiard": Override(_BSD3, "BSD-3-Clause"),
    "vine": Override(_BSD3, "BSD-3-Clause"),
    "itsdangerous": Override(_BSD3, "BSD-3-Clause"),
    "flask-wtf": Override(_BSD3 + " (its License field is that text)", "BSD-3-Clause"),
    "wtforms": Override(_BSD3 + " (its License field is that text)", "BSD-3-Clause"),
    "pyrage": Override(
        "its metadata names no license; its LICENSE is the MIT text. The Rust crates "
        "compiled into it are listed with their licenses in its .dist-info/sboms "
        "(CycloneDX; MIT or Apache-2.0 for nearly all)",
        "MIT",
    ),
    "python-dateutil": Override(
        'its metadata says "Dual License" with both the BSD and Apache classifiers; its '
        "LICENSE says contributions after 2017-12-01 (and relicensed ones) are "
        "Apache-2.0 and the rest is under the 3-clause BSD text, so both apply",
        "Apache-2.0 and BSD-3-Clause",
    ),
    "paramiko": Override(
        'its License-Expression "LGPL-2.1" is a deprecated SPDX name that says neither '
        '"only" nor "or later"; every source header says "version 2.1 of the License, or '
        '(at your option) any later version". Its LICENSE is the bare LGPL text: the '
        "holders are those of the source headers",
        "LGPL-2.1-or-later",
        (
            "2003-2011 Robey Pointer <robeypointer@gmail.com>",
            "2003-2007 John Rochester <john@jrochester.org>",
            "2005 John Arbash-Meinel <john@arbash-meinel.com>",
            "2012 Olle Lundberg <geek@nerd.sh>",
            "2012 Yipit, Inc <coders@yipit.com>",
            "2013 Torsten Landschoff <torsten@debian.org>",
            "2013-2014 science + computing ag",
            "2019 Edgar Sousa <https://github.com/edgsousa>",
            "2021 Lew Gordon <lew.gordon@genesys.com>",
            "2022 Patrick Spendrin <ps_ml@gmx.de>",
        ),
    ),
    "prometheus-client": Override(
        "its License-Expression says Apache-2.0 AND BSD-2-Clause; the BSD-2-Clause part "
        "is the bundled decorator 4.0.10 (its NOTICE says so), whose text and holder are "
        "in the header of prometheus_client/decorator.py, not in a license file",
        "Apache-2.0 and BSD-2-Clause",
        ("2005-2016 Michele Simionato",),
        ("BSD-2-Clause",),
    ),
    "types-paramiko": Override(
        "its License-Expression says Apache-2.0, but its LICENSE (typeshed's) adds that "
        "parts of typeshed are under the MIT license reproduced there (Jukka Lehtosalo's "
        "copyright): both are stated",
        "Apache-2.0 and MIT",
    ),
    "typing-extensions": Override(
        "its LICENSE (Python's) names the Python Software Foundation as holder only "
        "within the PSF license's text (the notice it asks to retain), not on a line of "
        "its own: that notice is added here",
        copyright=("2001-2023 Python Software Foundation",),
    ),
    "werkzeug": Override(
        "besides its BSD-3-Clause code it ships the debugger's Silk icons "
        "(werkzeug/debug/shared/*.png) by Mark James, under CC-BY-2.5 or CC-BY-3.0 "
        "(werkzeug/debug/shared/ICON_LICENSE.md)",
        "BSD-3-Clause and CC-BY-3.0",
        ("Mark James <mjames@gmail.com>",),
        ("CC-BY-3.0",),
    ),
}

_LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)
#: License files elsewhere in a wheel (werkzeug's ICON_LICENSE.md): they
#: need an override saying what they cover.
_STRAY_LICENSE = re.compile(r"LICEN[CS]E|COPYING|NOTICE", re.IGNORECASE)
_COPYRIGHT_LINE = re.compile(
    r"^(?:Copyright(?:\s+(?:\([cC]\)|©))?\s+\S|\([cC]\)\s*\d|©|\d{4}(?:\s*-\s*\d{4})?\s+\([cC]\))"
)
#: Copyright lines that are not a holder's: templates, and the notice of
#: the license document itself (the FSF's, atop the LGPL's text).
_NOT_A_HOLDER = re.compile(r"\[yyyy\]|\{yyyy\}|<year>|Free Software Foundation, Inc\.")


class NoLicense(Exception):
    """A vendored distribution whose license cannot be stated without a
    guess (add it to ``LICENSE_OVERRIDES``, with the reason)."""


@dataclass
class Licensing:
    """What debian/copyright says of one vendored wheel."""

    name: str
    version: str
    files: str
    copyright: list[str]
    license: str
    comment: str
    #: ``{license: [(file, text, whether it has no other license)]}`` of
    #: the license files that have each license's text.
    texts: dict[str, list[tuple[str, str, bool]]] = field(default_factory=dict)


def _words(text: str) -> str:
    return " ".join(text.split())


def _spdx(expression: str) -> str | None:
    """An SPDX expression of known licenses joined by AND/OR, in DEP-5
    syntax (``Apache-2.0 or BSD-3-Clause``); None for anything else
    (parentheses, WITH, an unknown or deprecated name)."""
    known = {name.lower(): name for name in LICENSE_TEXTS}
    tokens = expression.split()
    out: list[str] = []
    for index, token in enumerate(tokens):
        if index % 2:
            if token.upper() not in ("AND", "OR"):
                return None
            out.append(token.lower())
        elif token.lower() in known:
            out.append(known[token.lower()])
        else:
            return None
    return " ".join(out) if len(tokens) % 2 else None


def _license_ids(expression: str) -> list[str]:
    return [token for token in expression.split() if token not in ("and", "or")]


def _copyright_lines(text: str) -> list[str]:
    """The holders a license file names: its lines starting with
    "Copyright", "(c)" or "YEAR (c)", continued while a line ends with a
    comma or "and", cleaned of "Copyright (c)" and "All rights reserved"."""
    lines = [line.strip() for line in text.splitlines()]
    found: list[str] = []
    for index, line in enumerate(lines):
        if not _COPYRIGHT_LINE.match(line) or _NOT_A_HOLDER.search(line):
            continue
        following = index + 1
        while (
            re.search(r"(,|\band|&)$", line)
            and following < len(lines)
            and lines[following]
            and not _COPYRIGHT_LINE.match(lines[following])
        ):
            line = f"{line} {lines[following]}"
            following += 1
        line = re.sub(r"^Copyright\b|\([cC]\)|©", " ", line)
        line = re.sub(r"\s*All rights reserved\.?", "", line, flags=re.IGNORECASE)
        line = _words(line).strip(" ,")
        if line and line not in found:
            found.append(line)
    return found


def _metadata_license(meta: Message) -> tuple[str, str] | None:
    """``(DEP-5 expression, where it was read)`` from the metadata alone, or
    None when it does not name one license (expression) unambiguously."""
    if meta.get("License-Expression"):
        expression = _spdx(meta["License-Expression"])
        return (expression, "License-Expression") if expression else None
    stated = (meta.get("License") or "").strip()
    if stated and "\n" not in stated:
        if stated.lower() in LICENSE_NAMES:
            return LICENSE_NAMES[stated.lower()], "License field"
        if expression := _spdx(stated):
            return expression, "License field"
    classifiers = [
        c.split("::")[-1].strip().lower()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    named = {LICENSE_NAMES.get(c) for c in classifiers}
    if len(named) == 1 and (only := named.pop()) is not None:
        return only, "License classifier"
    return None


def _holder(meta: Message) -> str:
    """The author (or maintainer) from the metadata, as "Name <email>"."""
    for person, email in (("Author", "Author-email"), ("Maintainer", "Maintainer-email")):
        name, address = meta.get(person), meta.get(email)
        if address and "<" in address:
            return _words(address)
        if name and address:
            return _words(f"{name} <{address}>")
        if name or address:
            return _words(name or address or "")
    return ""


def licensing(wheel: Path, source: str, installed: str, listed: str) -> Licensing:
    """debian/copyright's stanza of ``wheel`` (found under ``source/`` in the
    source tree, installed into ``installed``, pinned in ``listed``), from its
    METADATA and license files, and ``LICENSE_OVERRIDES``."""
    name_part, version = wheel.name.split("-")[:2]
    name = canonicalize_name(name_part)
    override = LICENSE_OVERRIDES.get(name)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        dist_info = metadata.rsplit("/", 1)[0] + "/"
        meta = HeaderParser().parsestr(archive.read(metadata).decode())
        listed_files = {f"{dist_info}{f}" for f in meta.get_all("License-File") or []}
        listed_files |= {f"{dist_info}licenses/{f}" for f in meta.get_all("License-File") or []}
        license_files = sorted(
            n
            for n in names
            if not n.endswith("/")
            and n.startswith(dist_info)
            and (
                n in listed_files
                or n.startswith(f"{dist_info}licenses/")
                or ("/" not in n[len(dist_info) :] and _LICENSE_FILE.match(n[len(dist_info) :]))
            )
        )
        texts = {
            n[len(dist_info) :]: archive.read(n).decode(errors="replace") for n in license_files
        }
        # Not .py: a module named like license.py is code, not a notice.
        strays = [
            n
            for n in names
            if not n.startswith(dist_info)
            and not n.endswith("/")
            and not n.endswith(".py")
            and _STRAY_LICENSE.search(n.rsplit("/", 1)[-1])
        ]
    where = f"{name} {version}"
    if strays and override is None:
        raise NoLicense(
            f"{where}: license files outside its .dist-info ({', '.join(strays)}): "
            "say what they cover in LICENSE_OVERRIDES"
        )
    comment = [f"{name} {version} (wheel), installed unchanged into {installed} ({listed})."]
    if override and override.license:
        expression, how = override.license, "LICENSE_OVERRIDES in packaging/deps.py"
        comment.append(f"License: from packaging/deps.py, because {override.reason}.")
    else:
        found = _metadata_license(meta)
        if found is None:
            stated = {
                "License-Expression": meta.get("License-Expression"),
                "License": _words(meta.get("License") or "")[:60] or None,
                "classifiers": [
                    c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
                ]
                or None,
            }
            raise NoLicense(
                f"{where}: no determinable license from its metadata ({stated}): "
                "add it to LICENSE_OVERRIDES in packaging/deps.py, with the reason"
            )
        expression, how = found
        comment.append(f"License: from the METADATA's {how}.")
        if override:
            comment.append(f"Also: {override.reason}.")
    for license_id in _license_ids(expression):
        if license_id not in LICENSE_TEXTS:
            raise NoLicense(f"{where}: {license_id} (from {how}) is not in LICENSE_TEXTS")
    record = Licensing(name, version, f"{source}/{name_part}-{version}-*.whl", [], expression, "")
    for license_id in _license_ids(expression):
        matching = [
            (file, text) for file, text in texts.items() if LICENSE_TEXTS[license_id](_words(text))
        ]
        if not matching and not (override and license_id in override.elsewhere):
            raise NoLicense(
                f"{where}: {how} says {license_id}, but none of its license files "
                f"({', '.join(texts) or 'none'}) has that text: check it and "
                "add it to LICENSE_OVERRIDES with the reason"
            )
        record.texts[license_id] = [
            (
                file,
                text,
                [i for i, test in LICENSE_TEXTS.items() if test(_words(text))] == [license_id],
            )
            for file, text in matching
        ]
    for text in texts.values():
        record.copyright += [
            line for line in _copyright_lines(text) if line not in record.copyright
        ]
    record.copyright += [
        line for line in (override.copyright if override else ()) if line not in record.copyright
    ]
    if not record.copyright:
        holder = _holder(meta)
        if not holder:
            raise NoLicense(
                f"{where}: its license files name no copyright holder, nor does "
                "its metadata an author: add one to LICENSE_OVERRIDES"
            )
        record.copyright = [holder]
        comment.append(
            "Copyright: its license files name no holder; this is the author "
            "(or maintainer) of its METADATA."
        )
    record.comment = " ".join(comment)
    return record


def _field(name: str, lines: list[str]) -> list[str]:
    """A deb822 field: the first line after the name, the others indented."""
    return [f"{name}: {lines[0]}", *(f" {line}" if line else " ." for line in lines[1:])]


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        79,
        initial_indent="Comment: ",
        subsequent_indent=" ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def _license_body(text: str) -> list[str]:
    """A license file's text for a standalone paragraph: without its
    holders' lines (those belong to its Files stanza), dedented."""
    lines = text.expandtabs().splitlines()
    holders = _copyright_lines(text)
    kept: list[str] = []
    skip = 0
    for index, line in enumerate(lines):
        if skip:
            skip -= 1
            continue
        stripped = line.strip()
        if _COPYRIGHT_LINE.match(stripped) and not _NOT_A_HOLDER.search(stripped) and holders:
            # Skip the continuation lines _copyright_lines joined, too.
            following = index + 1
            joined = stripped
            while (
                re.search(r"(,|\band|&)$", joined)
                and following < len(lines)
                and lines[following].strip()
                and not _COPYRIGHT_LINE.match(lines[following].strip())
            ):
                joined = f"{joined} {lines[following].strip()}"
                following += 1
            skip = following - index - 1
            continue
        if re.fullmatch(r"All rights reserved\.?", stripped, re.IGNORECASE):
            continue
        kept.append(line.rstrip())
    body = textwrap.dedent("\n".join(kept)).strip("\n")
    return [
        line if line.strip() != "." else "[.]"
        for line in re.sub(r"\n{3,}", "\n\n", body).splitlines()
    ]


def render_copyright(records: list[Licensing], handwritten: str) -> str:
    """debian/copyright: ``handwritten`` (the header and srht's stanza,
    kept as they are), then one stanza per vendored wheel and a standalone
    paragraph per license they use."""
    paragraphs = [handwritten.rstrip("\n")]
    for record in records:
        paragraphs.append(
            "\n".join(
                [
                    f"Files: {record.files}",
                    *_field("Copyright", record.copyright),
                    f"License: {record.license}",
                    *_comment(record.comment),
                ]
            )
        )
    used = sorted({i for record in records for i in _license_ids(record.license)})
    for license_id in used:
        if license_id in COMMON_LICENSES:
            body = COMMON_LICENSES[license_id].splitlines()
            comment = ""
        elif license_id in OTHER_LICENSE_TEXTS:
            body = OTHER_LICENSE_TEXTS[license_id].splitlines()
            comment = ""
        else:
            # The shortest text that has this license alone (the least
            # preamble and project-specific wording), else any.
            candidates = [
                (r, file, text, alone)
                for r in records
                for file, text, alone in r.texts.get(license_id, [])
            ]
            source, file, text, _alone = min(
                [c for c in candidates if c[3]] or candidates,
                key=lambda c: len("\n".join(_license_body(c[2]))),
            )
            body = _license_body(text)
            comment = (
                f"The text of {file} in {source.name} {source.version}'s .dist-info, "
                "without its copyright lines."
            )
        lines = [f"License: {license_id}", *(f" {line}" if line.strip() else " ." for line in body)]
        if comment:
            lines += _comment(comment)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs) + "\n"


def _handwritten(text: str) -> str:
    """The part of debian/copyright before the generated stanzas."""
    kept: list[str] = []
    for paragraph in text.split("\n\n"):
        if paragraph.startswith("Files: vendor/"):
            break
        kept.append(paragraph)
    return "\n\n".join(kept)


def _find_wheel(folder: Path, pin: str) -> Path:
    name, version = pin.split("==")
    for wheel in sorted(folder.glob("*.whl")):
        wheel_name, wheel_version, _build, _tags = parse_wheel_filename(wheel.name)
        if wheel_name == canonicalize_name(name) and str(wheel_version) == version:
            return wheel
    raise NoLicense(f"{pin}: no wheel of it in {folder}")


def pins(path: Path) -> list[str]:
    """The ``name==version`` lines of a vendor list."""
    return [
        line.split("#", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]


def copyright_text(servers: Path, installer: Path) -> str:
    """debian/copyright as the vendored wheels (the committed lists' pins,
    found in ``servers`` and ``installer``) say it should be."""
    records = []
    for (listed, source, installed, _sub), folder in zip(
        COPYRIGHT_SETS, (servers, installer), strict=True
    ):
        for pin in sorted(pins(listed), key=lambda pin: canonicalize_name(pin.split("==")[0])):
            records.append(
                licensing(_find_wheel(folder, pin), source, installed, f"packaging/{listed.name}")
            )
    return render_copyright(records, _handwritten(COPYRIGHT.read_text()))


def write_copyright(folder: Path) -> int:
    """``copyright DIR``: regenerate debian/copyright from the wheels in
    ``DIR`` (and ``DIR/installer``), offline."""
    try:
        COPYRIGHT.write_text(copyright_text(folder, folder / INSTALLER_WHEELS))
    except NoLicense as problem:
        print(f"no license: {problem}", file=sys.stderr)
        return 1
    return 0
