"""paste's pages, one blueprint per module: making, showing, listing and
deleting pastes (``pastes``), and a file's raw and download views
(``files``).

Pages work without JavaScript. A paste someone may not see answers 404,
exactly like a paste that does not exist.
"""
