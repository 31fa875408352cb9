"""srht_installer: the self-hoster's installer (see the installer issue)."""
