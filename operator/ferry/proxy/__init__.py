"""ferry-proxy: the sidecar in front of every predictor; limits, queues, counts and drains."""
