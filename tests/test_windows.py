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


def test_eq1_rounds_away_float_noise_on_both_sides():
    """Subtitle times whose product with the frame rate lands a hair off an integer: 1.14 * 50 is
    56.99999999999999 and 0.57 * 100 is 56.99999999999999 (floor would start a frame early), 0.07 * 100 is
    7.000000000000001 and 0.14 * 50 is 7.000000000000001 (ceil would end a frame late)."""
    assert frame_range(1.14, 2.0, 50.0, 200) == (57, 100)
    assert frame_range(0.57, 1.0, 100.0, 200) == (57, 100)
    assert frame_range(0.0, 0.07, 100.0, 200) == (0, 7)
    assert frame_range(0.0, 0.14, 50.0, 200) == (0, 7)


def test_eq1_hand_worked():
    # 25 Hz: frame i spans [i/25, (i+1)/25) = [0.04 i, 0.04 (i+1)); 0.50 s lies in frame 12 and 0.55 s in frame 13
    assert frame_range(0.50, 0.55, 25.0, 100) == (12, 14)
    # 12.5 Hz (frames of 80 ms): 1.00 s starts frame 12 and 1.70 s falls inside frame 21 (1.68 .. 1.76 s)
    assert frame_range(1.00, 1.70, 12.5, 100) == (12, 22)
    assert frame_range(1.00, 1.68, 12.5, 100) == (12, 21)  # ending exactly on a boundary takes no extra frame
    assert frame_range(0.99, 1.00, 12.5, 100) == (12, 13)  # 0.99 s is in frame 12 (0.96 .. 1.04 s)
    assert frame_range(0.3, 2.852, 50.0, 1000) == (15, 143)  # the test dialogue's first utterance at 50 Hz


TOL = 1e-5  # frames: times are floats


@given(times, times, rates, st.integers(min_value=1, max_value=10_000))
def test_eq1_properties(t0, t1, rate, length):
    """Properties, not the formula: every frame the utterance touches is in the window, and the window starts no
    earlier than the frame holding the start (floor) and ends no later than the frame holding the end (ceil)."""
    start, end = min(t0, t1), max(t0, t1)
    a, b = frame_range(start, end, rate, length)
    assert 0 <= a < b <= length
    if end * rate <= length - 1:  # the utterance lies inside the features: no clamping
        assert a <= start * rate + TOL and b >= end * rate - TOL  # covered: frames a .. b-1 span [start, end]
        assert a > start * rate - 1 - TOL  # no frame that ends before the utterance starts
        assert b < end * rate + 1 + TOL or b == a + 1  # no frame that starts after it ends
    elif start * rate >= length:  # entirely past the features: the last frame
        assert (a, b) == (length - 1, length)
    else:  # it runs past the end: the window runs to the end
        assert b == length and a <= start * rate + TOL


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


def test_relative_to_speech_subtracts_the_mean_of_the_speech_frames_only():
    import numpy as np

    from acoustemo.data.windows import relative_to_speech

    data = np.arange(20, dtype=np.float32).reshape(10, 2)  # 10 frames at 10 Hz; frame i = (2i, 2i + 1)
    # spans -> frames 2..4 and 4..6 (frame 4 counted once): frames 2-6, mean (8, 9)
    out = relative_to_speech(data, [(0.2, 0.5), (0.4, 0.7)], 10.0)
    np.testing.assert_array_equal(out, data - np.array([8.0, 9.0], dtype=np.float32))
    # no span: the whole clip's mean (9, 10)
    np.testing.assert_array_equal(relative_to_speech(data, [], 10.0), data - np.array([9.0, 10.0], dtype=np.float32))
    # a gain or an overall pitch is one offset per channel: it cancels
    np.testing.assert_allclose(relative_to_speech(data + np.array([3.0, -7.5]), [(0.2, 0.5)], 10.0),
                               relative_to_speech(data, [(0.2, 0.5)], 10.0), atol=1e-5)
