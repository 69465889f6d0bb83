"""What the operator does: each service takes plain inputs and adapters, and holds the logic."""
