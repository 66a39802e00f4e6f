"""FFmpeg -progress parsing and the publish throttle."""

from __future__ import annotations

import pytest

from mpr_transcoder.domain.progress import ProgressParser, ProgressSample, ProgressThrottle

BLOCK = """frame=120
fps=59.94
stream_0_0_q=28.0
bitrate=1234.5kbits/s
total_size=262192
out_time_us=4000000
out_time_ms=4000000
out_time=00:00:04.000000
dup_frames=0
drop_frames=0
speed=2.5x
progress=continue
"""


def feed(parser: ProgressParser, text: str) -> list[ProgressSample]:
    return [s for line in text.splitlines() if (s := parser.feed(line + "\n"))]


def test_a_block_yields_one_sample_from_out_time_us():
    (sample,) = feed(ProgressParser(), BLOCK)
    assert sample.out_time_seconds == pytest.approx(4.0)  # not 4000 s from out_time_ms
    assert sample.fps == pytest.approx(59.94)
    assert sample.speed == pytest.approx(2.5)
    assert sample.done is False


def test_unknown_values_are_none_and_end_marks_done():
    text = "out_time_us=N/A\nfps=0.00\nspeed=N/A\nprogress=end\n"
    (sample,) = feed(ProgressParser(), text)
    assert sample.out_time_seconds is None and sample.speed is None
    assert sample.done is True


def test_percent_eta_and_the_cap_before_the_end():
    clock = iter([0.0, 2.0, 4.0]).__next__
    throttle = ProgressThrottle(10.0, clock)
    update = throttle.update(ProgressSample(4.0, 30.0, 2.0, False))
    assert update.percent == pytest.approx(40.0)
    assert update.eta_seconds == pytest.approx(3.0)  # 6 s of media left at 2x
    assert throttle.update(ProgressSample(11.0, 30.0, 2.0, False)).percent == pytest.approx(99.9)
    assert throttle.update(ProgressSample(11.0, 30.0, 2.0, True)).percent == 100.0


def test_at_most_once_a_second_but_every_ten_percent_step():
    now = [0.0]
    throttle = ProgressThrottle(100.0, lambda: now[0])
    published = []
    for tenth in range(1, 300):  # 0.1 s of media per 0.01 s of wall time
        now[0] = tenth * 0.01
        if update := throttle.update(ProgressSample(tenth * 0.1, None, 10.0, False)):
            published.append(update.percent)
    # 3 s of wall time: the first sample, one per second, plus the 10 % and 20 % steps.
    assert published[0] == pytest.approx(0.1)
    assert any(p == pytest.approx(10.0) for p in published)
    assert any(p == pytest.approx(20.0) for p in published)
    assert len(published) <= 6


def test_percent_never_goes_backwards_and_unknown_duration_stays_put():
    throttle = ProgressThrottle(10.0, iter(range(100)).__next__)
    assert throttle.update(ProgressSample(5.0, None, None, False)).percent == pytest.approx(50)
    assert throttle.update(ProgressSample(3.0, None, None, False)).percent == pytest.approx(50)
    unknown = ProgressThrottle(None, iter(range(100)).__next__)
    assert unknown.update(ProgressSample(3.0, None, None, False)).percent == 0.0
