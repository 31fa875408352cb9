"""git's pages, one blueprint per module: repositories as things people
make and manage (``repos``: the index, creating, a user's list, settings)
and browsing one (``browse``: summary, tree, file, raw, blame, log, commit,
refs)."""
