"""The autoscalers under comparison, each a model of its documented behaviour (DESIGN.md §4)."""
