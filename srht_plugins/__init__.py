"""The built-in services, one package each; each registers itself through an
entry point in the group ``srht.services`` (see pyproject.toml)."""
