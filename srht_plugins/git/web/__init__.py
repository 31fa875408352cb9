"""git's pages, one blueprint per module: repositories as things people
make and find (``repos``: the index, creating, a user's list), browsing one
(``browse``: summary, tree, file, raw, blame, log, commit, refs), and its
owner's settings (``settings``: details, name, access, deletion)."""
