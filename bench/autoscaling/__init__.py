"""A deterministic simulation of autoscalers over request traces: Ferry's decide() against
models of the Kubernetes HPA, Knative's KPA, Cortex and an oracle. See docs/autoscaling.md."""
