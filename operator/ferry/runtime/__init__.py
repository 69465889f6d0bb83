"""ferry-runtime: serves a Python class as a predictor, for users who would rather not write a
server. Raise `PredictorError` from `predict` to answer with a status of your choosing."""

from ferry.runtime.errors import PredictorError

__all__ = ["PredictorError"]
