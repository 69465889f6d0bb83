"""Model artifacts' I/O: the fetch of one version from S3 into the pod before the predictor
starts, and the push of a new version (`ferry model push`)."""
