"""The hub's clock (docs/behaviour.md#the-hubs-clock): the offset from Date headers, and when to
say so."""

from datetime import timedelta

import pytest

from idle_culler_daemon.clock import ClockWatch, Notice, Sample, hub_offset, sample
from tests.fakes import NOW


def seconds(value):
    return timedelta(seconds=value)


def dated(offset_s, after_s=0.3):
    """A sample whose answer arrived ``after_s`` after NOW (culler's clock), from a hub whose
    clock is ``offset_s`` ahead; its Date truncated to the second, as HTTP has it."""
    hub_time = NOW + seconds(after_s + offset_s)
    return Sample(NOW + seconds(after_s), hub_time.replace(microsecond=0))


# --- the offset -------------------------------------------------------------------------------

@pytest.mark.parametrize("offset_s", [7200, -7200, 45, -31, 3])
def test_hub_offset_is_the_hub_clock_minus_the_cullers(offset_s):
    assert hub_offset([dated(offset_s)]) == seconds(offset_s)


def test_hub_offset_corrects_for_the_dates_one_second_resolution():
    # Answered at NOW+0.8 s by a hub 3.9 s ahead: its clock said NOW+4.7 s, its Date NOW+4 s
    # (truncated). Date minus the culler's time is 3.2 s, which would round to 3; with the
    # half second the Date hides on average it is 3.7 s: 4, the whole second nearest 3.9.
    assert hub_offset([dated(3.9, after_s=0.8)]) == seconds(4)
    # 10.1 s behind: Date NOW-10 s, minus 0.8 s is -10.8 (-11); corrected -10.3: -10.
    assert hub_offset([dated(-10.1, after_s=0.8)]) == seconds(-10)


def test_hub_offset_under_two_seconds_is_no_offset():
    for offset_s in (0, 0.4, 1.4, -0.9, -1.4):
        assert hub_offset([dated(offset_s)]) == timedelta(0), offset_s
    # NOW+2.9 s at the hub: Date NOW+2 s, corrected 2.2 s after the answer at NOW+0.3 s
    assert hub_offset([dated(2.6)]) == seconds(2)
    assert hub_offset([dated(-2.6)]) == seconds(-3)  # Date NOW-3 s: -2.8 s


def test_hub_offset_takes_the_median_of_the_dated_samples():
    samples = [dated(7200, 0.1), dated(7201, 0.2), dated(30, 0.3), dated(7199, 0.4),
               dated(9000, 0.5)]
    assert hub_offset(samples) == seconds(7200)  # one slow or odd answer does not move it
    assert hub_offset(samples[:2]) == seconds(7201)  # even count: the mean of the middle two


def test_hub_offset_without_a_usable_date_is_none():
    assert hub_offset([]) is None
    assert hub_offset([Sample(NOW, None)]) is None
    assert hub_offset([Sample(NOW, None), dated(-7200)]) == seconds(-7200)


def test_sample_is_taken_in_the_middle_of_the_request():
    # The hub wrote its Date some time between sending and the answer: the middle is the best
    # guess, so a 4 s request to a hub 10 s ahead is not read as 8 or 12 s.
    one = sample(NOW, NOW + seconds(4), (NOW + seconds(12)).replace(microsecond=0))
    assert one.culler_time == NOW + seconds(2)
    assert hub_offset([one]) == seconds(10)


# --- when to say so ---------------------------------------------------------------------------

def test_clock_watch_warns_once_and_again_after_a_move_of_30_seconds():
    watch = ClockWatch()
    seen = [watch.observe(seconds(value)) for value in (7200, 7200, 7229, 7171, 7170)]
    assert seen == [Notice("offset", 7200), None, None, None, Notice("offset", 7170)]
    assert watch.observe(seconds(-7200)) == Notice("offset", -7200)
    assert watch.observe(seconds(-7190)) is None


def test_clock_watch_says_the_figure_at_start_and_when_the_clocks_agree_again():
    watch = ClockWatch()
    assert watch.observe(timedelta(0)) == Notice("in-step", 0)
    assert watch.observe(timedelta(0)) is None
    assert watch.observe(seconds(25)) is None  # under 30 s: no WARNING
    assert watch.observe(seconds(40)) == Notice("offset", 40)
    assert watch.observe(seconds(15)) is None  # moved by 25 s only
    assert watch.observe(timedelta(0)) == Notice("in-step", 0)
    assert watch.observe(seconds(-29)) is None


def test_clock_watch_says_a_missing_date_once():
    watch = ClockWatch()
    assert watch.observe(None) == Notice("unknown")
    assert [watch.observe(None) for _ in range(3)] == [None, None, None]
    assert watch.observe(seconds(3600)) == Notice("offset", 3600)
    assert watch.observe(None) is None


def test_clock_watch_first_offset_under_30_seconds_is_said_at_info():
    assert ClockWatch().observe(seconds(-29)) == Notice("in-step", -29)
