"""The first stage of ``srht-install restore``, run by pyinfra: install and
configure every host (packages, users, folders, PostgreSQL roles and empty
databases, the config, units), without activating anything, so the
services never start on empty databases before the archive's are in.

    SRHT_CONFIG=config.ini pyinfra srht_deploy/inventory.py srht_installer/restore_stage.py
"""

from srht_deploy.deploys import configure, install
from srht_deploy.inventory_data import current_site

_site = current_site()
install(_site)
configure(_site)
