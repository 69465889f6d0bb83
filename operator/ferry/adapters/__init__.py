"""Adapters to the outside: the Kubernetes API (and, later, AWS)."""
