"""The RealtimeAPI resource (pure): its schema and defaults (from the CRD file), its typed spec
with the autoscaling policy it implies, and the resource as the operator reads it (`resource`:
who it is, the spec parsed once, the status as read)."""
