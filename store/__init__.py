"""The store's room: how state reaches Redis (versioned records, the durable hand-off, the retry policy)."""
