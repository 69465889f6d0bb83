"""Model artifacts in S3: how versions are laid out and when one may be served (pure; the I/O
is `ferry.model`)."""
