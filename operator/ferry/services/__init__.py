"""What the operator does: each service takes plain inputs, adapters and the API as its handler
parsed it (ferry.spec.resource.RealtimeAPI), never the raw object, and holds the logic; every
status write goes through the one status writer (status_writer)."""
