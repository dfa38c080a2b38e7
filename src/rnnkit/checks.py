"""Argument checks of the library's constructors: each raises a ValueError naming the argument."""

from __future__ import annotations


def check_positive_int(name: str, value: object) -> int:
    """Raise a ValueError naming ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_probability(name: str, value: float, upper_inclusive: bool = False) -> float:
    """Raise a ValueError naming ``name`` unless ``value`` lies in [0, 1) (or [0, 1])."""
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")
    return float(value)


def check_choice(name: str, value: str, allowed: dict | tuple | list) -> str:
    """Raise a ValueError naming ``name`` and the choices unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value
