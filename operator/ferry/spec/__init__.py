"""The RealtimeAPI resource: its schema, defaults and typed model (pure)."""
