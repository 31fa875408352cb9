"""meta's pages, one blueprint per module: sign-on (``auth``), account
settings (``settings``), public keys (``keys``), administration (``admin``)
and OAuth2 (``oauth``); what they share is in ``common``."""
