"""Package discovery that pyproject.toml cannot express: ``deploy/`` and
``installer/`` are installed as ``srht_deploy`` and ``srht_installer``
(``[tool.setuptools.package-dir]``), with their sub-packages, and
``packages.find`` does not apply that mapping. Everything else about the
build is in pyproject.toml."""

from setuptools import find_packages, setup

RENAMED = {"deploy": "srht_deploy", "installer": "srht_installer"}

packages = find_packages(include=["srht_core", "srht_core.*", "srht_plugins", "srht_plugins.*"])
for folder, name in RENAMED.items():
    packages += [
        name + found[len(folder) :] for found in find_packages(include=[folder, folder + ".*"])
    ]

setup(packages=packages)
