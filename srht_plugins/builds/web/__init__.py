"""builds' pages: jobs (``jobs``) and settings (``settings``)."""
