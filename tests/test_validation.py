"""keras_preact.validation: the checks behind every "Invalid name=value.
Expected ..." error."""

import numpy as np
import pytest


@pytest.mark.parametrize("check, args, message", [
    ("check_choice", ("pooling", "sum", ("avg", "max")),
     "Invalid pooling='sum'. Expected one of ['avg', 'max']."),
    ("check_int", ("epochs", 0, 1), "Invalid epochs=0. Expected an int >= 1."),
    ("check_int", ("epochs", 2.0, 1), "Invalid epochs=2.0. Expected an int >= 1."),
    ("check_int", ("depth", True), "Invalid depth=True. Expected an int."),
    ("check_real", ("momentum", 1.5, 0.0, 1.0),
     "Invalid momentum=1.5. Expected a number in [0.0, 1.0]."),
    ("check_real", ("lr", float("nan"), 0.0), "Invalid lr=nan. Expected a number >= 0.0."),
    ("check_real", ("lr", "0.1", 0.0), "Invalid lr='0.1'. Expected a number >= 0.0."),
    ("check_bool", ("remat", "yes"), "Invalid remat='yes'. Expected True or False."),
    ("check_bool", ("include_top", 1), "Invalid include_top=1. Expected True or False."),
    ("check_bool", ("flag", None), "Invalid flag=None. Expected True or False."),
    ("check_bool", ("flag", "no", True), "Invalid flag='no'. Expected True or False or None."),
])
def test_validators_refuse_bad_values(check, args, message):
    from keras_preact import validation

    with pytest.raises(ValueError) as info:
        getattr(validation, check)(*args)
    assert str(info.value) == message


def test_validators_return_converted_values():
    from keras_preact.validation import check_bool, check_choice, check_int, check_real

    assert check_bool("b", False) is False and check_bool("b", None, allow_none=True) is None

    assert check_choice("p", "avg", ("avg",)) == "avg"
    assert type(check_int("n", np.int64(3), 1, 3)) is int
    assert type(check_real("x", np.float32(0.5), 0.0, 1.0)) is float
    assert check_real("x", 1, 0.0, 1.0) == 1.0
