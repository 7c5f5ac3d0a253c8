"""The worker-day benchmark: its hour marks (events scored by the end of each simulated hour) and its README rows."""

from benchmarks.report import rows
from benchmarks.worker_day import by_hour_of


def test_hour_marks_count_every_minute_up_to_that_hour() -> None:
    minutes = [[(b"k", b"v")] * (m % 7) for m in range(150)]  # 2.5 hours: the half hour has no mark
    marks = by_hour_of(minutes)
    assert marks == [sum(m % 7 for m in range(60)), sum(m % 7 for m in range(120))]


def test_a_row_per_paced_sizing_each_naming_its_partitions() -> None:
    def paced(mbs: list[float], partitions: tuple[int, int]) -> dict[str, object]:
        return {"hourly": [{"hour": i + 1, "rss_mb": mb} for i, mb in enumerate(mbs)], "hours": len(mbs),
                "hours_scored": len(mbs), "pace": 20.0, "rss_mb_peak_sampled": max(mbs) + 1,
                "event_partitions": partitions[0], "queue_partitions": partitions[1]}

    data = {"sections": {"worker_day": {"floor_scale": 1, "paced": paced([173.3, 185.1], (6, 3)),
                                        "paced_by_partitions": [paced([142.5, 148.6], (1, 1))]}}}
    got = [r for r in rows(data) if "small floor as it happens" in r[0]]
    assert [r[1] for r in got] == ["173 / 185 MB at hours 1–2", "142 / 149 MB at hours 1–2"]
    assert "PARTITIONS" not in got[0][0] and got[0][2].startswith("today's defaults")
    assert "EVENT_PARTITIONS=1 QUEUE_PARTITIONS=1" in got[1][0] and "beside" in got[1][2]
