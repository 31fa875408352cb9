"""The whole site, in dependency order: install, configure, activate on
every host, each stage across all hosts before the next.

    SRHT_CONFIG=config.ini pyinfra deploy/inventory.py deploy/site.py

(``srht deploy`` runs exactly this.) Use ``--dry`` for the plan, ``--limit
HOST`` for one host.
"""

from srht_deploy.deploys import activate, configure, install
from srht_deploy.inventory_data import current_site

_site = current_site()
install(_site)
configure(_site)
activate(_site)
