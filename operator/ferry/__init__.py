"""Ferry: machine-learning models served as autoscaling realtime HTTP APIs on Kubernetes."""

__version__ = "0.1.0"
