"""The store's room: how state reaches Redis and comes back (the retry policy; the hand-off and record schemas)."""
