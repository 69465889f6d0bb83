"""What the operator reports in a RealtimeAPI's status (pure)."""
