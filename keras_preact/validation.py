"""Argument validators, one style: `Invalid {name}={value!r}. Expected ...`.

Each returns the value (`check_int` as an `int`, `check_real` as a `float`)
or raises a `ValueError` naming the argument, what was received and what is
valid. Bounds are inclusive; booleans are not numbers; NaN is refused.
"""

import math
import numbers


def _invalid(name, value, expected):
    return ValueError(f"Invalid {name}={value!r}. Expected {expected}.")


def _bounds(low, high):
    if high == math.inf:
        return f" >= {low}" if low != -math.inf else ""
    return f" in [{low}, {high}]" if low != -math.inf else f" <= {high}"


def check_choice(name, value, valid):
    """`value` if it is one of `valid`, e.g. `check_choice("pooling", "avg", ("avg", "max"))`."""
    if value not in valid:
        raise _invalid(name, value, f"one of {list(valid)}")
    return value


def check_bool(name, value, allow_none=False):
    """`value` if it is `True` or `False` (or `None` with `allow_none`)."""
    if not (isinstance(value, bool) or (allow_none and value is None)):
        raise _invalid(name, value, "True or False" + (" or None" if allow_none else ""))
    return value


def check_int(name, value, low=-math.inf, high=math.inf):
    """`int(value)` for an integer (numpy ones too, not floats) in `[low, high]`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not low <= value <= high:
        raise _invalid(name, value, f"an int{_bounds(low, high)}")
    return int(value)


def check_real(name, value, low=-math.inf, high=math.inf):
    """`float(value)` for a real number in `[low, high]`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not low <= float(value) <= high:
        raise _invalid(name, value, f"a number{_bounds(low, high)}")
    return float(value)
