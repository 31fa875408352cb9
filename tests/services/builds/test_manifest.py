"""Reading manifests: what sr.ht's manifests say becomes a job, and a
manifest with problems is refused with every problem at once, each with its
line and key, before anything runs."""

from __future__ import annotations

import pytest

from srht_plugins.builds.manifest import ManifestError, parse, source_name

IMAGES = ["debian/bookworm"]


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse(text, images=IMAGES)
    return [str(problem) for problem in caught.value.problems]


def test_a_manifest_as_sr_ht_writes_them() -> None:
    manifest = parse(
        """image: debian/bookworm
packages:
  - make
  - gcc=4:12.2.0-3
sources:
  - https://git.example.org/~alice/hello
  - https://git.example.org/~alice/lib.git#v1.0
environment:
  GREETING: hello
  JOBS: 4
  VERBOSE: yes
secrets:
  - 1b2c3d4e-0000-4000-8000-000000000001
tasks:
  - build: |
      cd hello
      make
  - test: make -C hello check
artifacts:
  - hello/hello
triggers:
  - action: email
    condition: failure
    to: alice@example.org
  - {action: webhook, condition: always, url: "https://ci.example.org/hook"}
""",
        images=IMAGES,
    )
    assert manifest.image == "debian/bookworm"
    assert manifest.packages == ("make", "gcc=4:12.2.0-3")
    assert manifest.task_names == ["build", "test"]
    assert manifest.tasks[0][1] == "cd hello\nmake\n"
    # Variables are text, whatever YAML thought they were.
    assert manifest.environment == {"GREETING": "hello", "JOBS": "4", "VERBOSE": "yes"}
    assert [source_name(s) for s in manifest.sources] == ["hello", "lib"]
    assert manifest.lines == {"sources[0]": 6, "sources[1]": 7, "secrets[0]": 13}
    assert [t.action for t in manifest.triggers] == ["email", "webhook"]
    assert manifest.triggers[0].fires(False) and not manifest.triggers[0].fires(True)


def test_every_problem_is_named_with_its_line_and_key() -> None:
    found = problems(
        """image: arch/latest
packages: [Make, ok]
sources:
  - ftp://example.org/x
environment:
  1ST: x
  PATH: /bin
  LIST: [1, 2]
secrets: [not-a-uuid]
tasks:
  - build: 3
  - build: echo again
  - one: a
    two: b
  - "no spaces": x
artifacts: [""]
triggers:
  - {action: sms}
  - {action: email, to: nobody}
shell: true
"""
    )
    assert found == [
        "manifest:1 image: 'arch/latest' is not an image here (debian/bookworm)",
        "manifest:2 packages: 'Make' is not a Debian package name",
        "manifest:4 sources[0]: 'ftp://example.org/x' is not an http:// or https:// git URL",
        "manifest:6 environment.1ST: is not a variable name (letters, digits, _)",
        "manifest:7 environment.PATH: is set by the job itself",
        "manifest:8 environment.LIST: must be text, a number or true/false, not a list",
        "manifest:9 secrets: 'not-a-uuid' is not a secret's id (a UUID)",
        "manifest:11 tasks[0].build: must be text (a shell script), not a number",
        "manifest:12 tasks[1]: 'build' is the name of an earlier task",
        "manifest:13 tasks[2]: must be one task: `- name: script`",
        "manifest:15 tasks[3]: 'no spaces' is not a task name (letters, digits, - and _)",
        "manifest:16 artifacts: '' is not a file path",
        "manifest:18 triggers[0].action: must be email or webhook",
        "manifest:19 triggers[1].to: must be an email address",
        "manifest:20 shell: is not a manifest key (known: image, packages, sources, "
        "environment, secrets, tasks, artifacts, triggers)",
    ]


def test_required_keys_and_shapes() -> None:
    assert problems("tasks: []\n") == [
        "manifest:1 image: is required: the image the job runs on",
        "manifest:1 tasks: must name at least one task",
    ]
    assert problems("image: debian/bookworm\ntasks: echo hi\n") == [
        "manifest:2 tasks: must be a list, not text",
    ]
    assert problems("- image\n") == ["manifest:1: must be a mapping (name: value), not a list"]
    assert problems("") == ["manifest: is empty"]
    assert problems("image: debian/bookworm\nimage: again\ntasks: [{a: b}]\n") == [
        "manifest:2 image: is given twice (first on line 1)"
    ]


def test_yaml_errors_say_where() -> None:
    assert problems("image: debian/bookworm\ntasks:\n  - build: [unclosed\n") == [
        "manifest:4: is not valid YAML: expected ',' or ']', but got '<stream end>'"
    ]
    assert problems("image: x\n\ttasks: y\n")[0].startswith("manifest:2: is not valid YAML")


def test_aliases_cannot_make_a_small_manifest_huge() -> None:
    # Ten to the ninth values if expanded; the checks never expand them.
    lines = ["image: debian/bookworm", "x0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        lines.append(f"x{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    found = problems("\n".join([*lines, "tasks: *a8", "packages: *a8", ""]))
    # An aliased value is where its anchor is.
    assert "manifest:9 tasks[0]: must be one task: `- name: script`" in found
    assert "manifest:9 packages[0]: must be text, not a list" in found
    assert len(found) < 40


def test_a_file_name_in_problems() -> None:
    with pytest.raises(ManifestError) as caught:
        parse("image: nope\ntasks: [{a: b}]\n", images=IMAGES, file=".builds/test.yml")
    assert (
        str(caught.value)
        == ".builds/test.yml:1 image: 'nope' is not an image here (debian/bookworm)"
    )
