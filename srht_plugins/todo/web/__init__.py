"""todo's pages, one blueprint per module: trackers and their ticket lists
(``trackers``), a tracker's labels (``labels``), one ticket (``tickets``)
and a tracker's settings, access list and webhooks (``settings``)."""
