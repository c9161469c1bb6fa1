import numpy as np
import pytest

from maskcls.data.labels import age_band, AgeBounds, class_name, class_names, decode, encode, short_class_names


def test_all_18_classes_round_trip():
    seen = set()
    for m in range(3):
        for g in range(2):
            for b in range(3):
                c = encode(m, g, b)
                assert c == m * 6 + g * 3 + b
                assert decode(c) == (m, g, b)
                seen.add(c)
    assert seen == set(range(18))


def test_vectorised_round_trip():
    c = np.arange(18)
    assert np.array_equal(encode(*decode(c)), c)


def test_readable_names():
    assert class_name(4) == "Wear / Female / 30-59"
    assert class_name(17) == "Not wear / Female / >=60"
    assert class_names(AgeBounds(30, 58))[2] == "Wear / Male / >=58"


@pytest.mark.parametrize("age,band", [(18, 0), (29, 0), (30, 1), (57, 1), (59, 1), (60, 2)])
def test_default_bands(age, band):
    assert age_band(age) == band


def test_custom_upper_bound_moves_58_and_59():
    b = AgeBounds(30, 58)
    assert age_band(57, b) == 1 and age_band(58, b) == 2 and age_band(59, b) == 2


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="mask"):
        encode(3, 0, 0)
    with pytest.raises(ValueError, match="class"):
        decode(18)
    with pytest.raises(ValueError, match="lower"):
        AgeBounds(60, 30)


# -- class names on class axes, clickable confusion cells ------------------------------------------------------
def test_short_class_names_are_unique_and_readable():
    short = short_class_names()
    assert len(set(short)) == 18 and short[0] == "W/M/<30" and short[17] == "N/F/>=60"
