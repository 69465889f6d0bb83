"""Kubernetes resource quantities ("100m", "1.5", "16Gi", "1e3"), read exactly.

The grammar is Kubernetes' own (k8s.io/apimachinery resource.Quantity): a signed decimal
number, then one binary suffix (Ki … Ei), one decimal suffix (n u m k M G T P E) or an exponent
(e3, E-2). Values are Fractions, so "0.1" and "100m" are the same number and nothing is lost
before rounding up to whole millicores or bytes, as the scheduler counts them.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>[KMGTPE]i|[numkMGTPE])?)"
)
_SUFFIXES = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
# An exponent beyond this is a typo, and 10**huge would take the process's memory.
_MAX_EXPONENT = 30


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity; a JSON number counts as the same digits written out."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a quantity")
        return Fraction(str(value))
    match = _QUANTITY.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise QuantityError(
            f"{value!r} is not a quantity: write a number with an optional suffix, "
            "like 500m, 2, 512Mi or 16Gi"
        )
    number = Fraction(match["number"])
    if match["exponent"]:
        power = int(match["exponent"][1:])
        if abs(power) > _MAX_EXPONENT:
            raise QuantityError(f"{value!r}: exponent out of range")
        return number * Fraction(10) ** power
    return number * _SUFFIXES[match["suffix"] or ""]


def millicores(value: str | int | float) -> int:
    """CPU in thousandths of a core, rounded up as Kubernetes does ("0.1m" is 1m)."""
    return math.ceil(parse_quantity(value) * 1000)


def whole(value: str | int | float) -> int:
    """A count (bytes, GPUs), rounded up."""
    return math.ceil(parse_quantity(value))


def format_millicores(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_bytes(count: int) -> str:
    """The largest binary unit that writes `count` exactly: 512Mi, 16Gi, 1000."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIXES[suffix])
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)
