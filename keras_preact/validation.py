"""Argument validators, one style: `Invalid {name}={value!r}. Expected ...`.

Each returns the value (converted: `check_int` gives an `int`, `check_real`
a `float`) or raises a `ValueError` that names the argument, what was
received and what is valid. Booleans are refused as numbers.
"""

import math
import numbers


def _invalid(name, value, expected):
    return ValueError(f"Invalid {name}={value!r}. Expected {expected}.")


def check_choice(name, value, valid):
    """Returns `value` if it is one of `valid`, else raises a `ValueError`.

    Example:
    >>> check_choice("pooling", "avg", ("avg", "max"))
    'avg'
    """
    if value not in valid:
        raise _invalid(name, value, f"one of {list(valid)}")
    return value


def _bounds(low, high):
    if high == math.inf:
        return f" >= {low}" if low != -math.inf else ""
    return f" in [{low}, {high}]" if low != -math.inf else f" <= {high}"


def check_int(name, value, low=-math.inf, high=math.inf):
    """Returns `int(value)` if it is an integer in `[low, high]`, else raises.

    Numpy integers pass; bools and floats (even `2.0`) do not.

    Example:
    >>> check_int("epochs", 3, low=1)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise _invalid(name, value, f"an int{_bounds(low, high)}")
    return int(value)


def check_real(name, value, low=-math.inf, high=math.inf):
    """Returns `float(value)` if it is a real number in `[low, high]`, else raises.

    NaN is refused; infinity passes only when a bound is infinite.

    Example:
    >>> check_real("momentum", 0.9, low=0.0, high=1.0)
    0.9
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= float(value) <= high:
        raise _invalid(name, value, f"a number{_bounds(low, high)}")
    return float(value)
