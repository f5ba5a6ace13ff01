"""The store's room: how state reaches Redis and comes back (versioned records, the durable hand-off, the retry
policy)."""
