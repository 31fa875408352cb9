"""lists' pages: ``lists`` (the index, a user's lists, a list's threads
and patchsets, subscribing), ``archive`` (threads, messages, patchsets and
their downloads) and ``settings`` (the owner's: details, members,
webhooks, moderation, deletion)."""
