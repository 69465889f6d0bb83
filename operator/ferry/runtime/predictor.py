"""The user's predictor: found by `module:Class`, built once, called per request.

A synchronous `predict` runs in a bounded thread pool so a slow model never blocks the event loop
(and with it /healthz); an async one is awaited on the loop.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ferry.runtime.errors import LoadError


def find_class(spec: str) -> type:
    """The class named by `module:Class` (the class part may be dotted: `module:Outer.Inner`)."""
    module_name, colon, qualname = spec.partition(":")
    if not colon or not module_name or not qualname:
        raise LoadError(f"expected module:Class, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise LoadError(f"cannot import {module_name!r}: {error}") from error
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LoadError(f"{module_name!r} has no {qualname!r}") from None
    if not isinstance(target, type):
        raise LoadError(f"{spec} is not a class")
    if not callable(getattr(target, "predict", None)):
        raise LoadError(f"{spec} has no predict(self, payload) method")
    return target


class Predictor:
    def __init__(self, instance: Any, pool: ThreadPoolExecutor) -> None:
        self._predict: Callable[[Any], Any] = instance.predict
        self._is_async = inspect.iscoroutinefunction(self._predict)
        self._pool = pool

    @classmethod
    async def load(
        cls, spec: str, config: dict[str, Any], model_dir: Path, pool: ThreadPoolExecutor
    ) -> Predictor:
        """Build the user's class in the pool: model loading is usually slow and blocking."""
        predictor_class = find_class(spec)
        loop = asyncio.get_running_loop()
        instance = await loop.run_in_executor(pool, predictor_class, config, model_dir)
        return cls(instance, pool)

    async def predict(self, payload: Any) -> Any:
        if self._is_async:
            result: Awaitable[Any] = self._predict(payload)
            return await result
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._predict, payload)
