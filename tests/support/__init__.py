"""What the suite's tests share besides fixtures: a small real service
(``chores/``, an installable distribution) and real peers to talk to (an
SMTP sink, a Redis server started on demand). Fixtures wrapping them live
in ``tests/conftest.py``."""
