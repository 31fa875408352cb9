"""A pyinfra inventory derived from the one config, for
``pyinfra deploy/inventory.py deploy/site.py`` (``srht deploy`` runs exactly
that). The config is found as usual: ``$SRHT_CONFIG``, ``./config.ini``,
``/etc/srht/config.ini``.

Every host is in the group ``srht`` and in one group per role it has
(``postgresql``, ``redis``, ``nginx``, and each service's name), so
``--limit nginx`` or ``--limit meta`` select hosts by what they run.
"""

from srht_deploy.inventory_data import inventory_groups as _groups

globals().update(_groups())
