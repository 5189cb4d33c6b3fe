import math

import pytest
from hypothesis import given, strategies as st

from acoustemo.data.windows import fixed_windows, frame_range

rates = st.sampled_from([0.5, 1.0, 12.5, 25.0, 49.95, 50.0, 100.0])
times = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)


def test_eq1_examples():
    assert frame_range(0.0, 1.0, 50.0, 500) == (0, 50)
    assert frame_range(0.07, 0.21, 100.0, 500) == (7, 21)  # float noise must not shift frames
    assert frame_range(1.01, 1.02, 50.0, 500) == (50, 51)  # floor / ceil
    assert frame_range(3.0, 5.0, 0.5, 4) == (1, 3)
    assert frame_range(9.0, 12.0, 50.0, 100) == (99, 100)  # beyond the end: clamped, one frame
    assert frame_range(2.0, 2.0, 50.0, 500) == (100, 101)  # zero-length: one frame


@given(times, times, rates, st.integers(min_value=1, max_value=10_000))
def test_eq1_properties(t0, t1, rate, length):
    start, end = min(t0, t1), max(t0, t1)
    a, b = frame_range(start, end, rate, length)
    assert 0 <= a < b <= length
    exact_a, exact_b = math.floor(round(start * rate, 6)), math.ceil(round(end * rate, 6))
    if exact_a < exact_b <= length:
        assert (a, b) == (exact_a, exact_b)  # unclamped windows are exactly Eq. (1)
    # clamping only ever moves a boundary to the sequence's edge or widens to one frame
    assert a == min(max(exact_a, 0), length - 1)
    assert b == min(max(exact_b, a + 1), length)


def test_eq1_rejects_bad_input():
    with pytest.raises(ValueError, match="ends before it starts"):
        frame_range(2.0, 1.0, 50.0, 100)
    with pytest.raises(ValueError, match="empty"):
        frame_range(0.0, 1.0, 50.0, 0)
    with pytest.raises(ValueError, match="positive"):
        frame_range(0.0, 1.0, 0.0, 10)


@given(st.floats(min_value=0.01, max_value=300.0), st.sampled_from([0.5, 1.0, 2.0, 3.3]))
def test_fixed_windows_tile_the_clip(duration, window):
    wins = fixed_windows(duration, window)
    assert wins[0][0] == 0.0
    assert wins[-1][1] == pytest.approx(duration)
    for (s0, e0), (s1, e1) in zip(wins, wins[1:]):
        assert e0 == pytest.approx(s1)
        assert e0 - s0 == pytest.approx(window)
    assert all(e > s for s, e in wins)
