"""The local environment: a real Kubernetes control plane and its helpers on one machine."""
