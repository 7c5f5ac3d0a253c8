"""The worker-day benchmark's hour marks: the events scored by the end of each simulated hour."""

from benchmarks.worker_day import by_hour_of


def test_hour_marks_count_every_minute_up_to_that_hour() -> None:
    minutes = [[(b"k", b"v")] * (m % 7) for m in range(150)]  # 2.5 hours: the half hour has no mark
    marks = by_hour_of(minutes)
    assert marks == [sum(m % 7 for m in range(60)), sum(m % 7 for m in range(120))]
