"""todo's pages, one blueprint per module: trackers and their ticket lists
(``trackers``), one ticket (``tickets``) and a tracker's settings, access
list, labels and webhooks (``settings``). Helpers they share are in
``common``."""
