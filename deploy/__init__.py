"""srht_deploy: pyinfra deploys of srht services (see the deploy issue)."""
