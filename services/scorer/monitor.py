"""Faust's Monitor, kept to what Faust itself reads back.

Faust makes its Monitor a sensor of every app: it is called four times for each record consumed, twice for each
record sent and once for each table read or write, and keeps counts and timings per topic, stream, task and table
that only Faust's own web pages show (all off here: build_app's web_*_enabled=False; our figures are on /metrics).
At ~2 records consumed and ~4 sent per event that is some 20 calls per event. This one keeps what Faust's consumer
reads: the time each partition's stream last took an event (its stuck-stream check, `verify_event_path`). What the
consumer calls on the monitor directly (end offsets, commits) stays Monitor's.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor


class LeanMonitor(Monitor):  # type: ignore[misc]
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: Any, key: Any) -> None:
        pass

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> None:
        pass

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        pass

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.send_errors += 1
