"""Hub's pages: ``home`` (the front door, the dashboard, explore and
profiles), ``projects`` (a project, making and changing one) and ``hooks``
(where the other services post their events)."""
