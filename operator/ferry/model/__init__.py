"""Model artifacts: fetching one version from S3 into the pod before the predictor starts."""
