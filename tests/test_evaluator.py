"""The daemon's evaluation thread: polls ask, one evaluation takes in all that asked.

A thousand polls must not mean a thousand evaluations: requests made while an evaluation
runs are merged into the next one, each poll's source is told once it is taken in, a failed
evaluation keeps its sources for the next, and the running clocks are measured again on their
own schedule, not per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator

import pytest
from harness import wait_for

from monitor.evaluator import EvaluationLoop, Round


class Recorder:
    """An evaluation that takes ``seconds`` and may be told to fail."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.rounds: list[Round] = []
        self.done: list[frozenset[str]] = []
        self.fail = False
        self.lock = threading.Lock()
        self.started = threading.Event()

    def evaluate(self, work: Round) -> bool:
        self.started.set()
        time.sleep(self.seconds)
        with self.lock:
            self.rounds.append(work)
        return not self.fail

    def evaluated(self, sources: Collection[str]) -> None:
        with self.lock:
            self.done.append(frozenset(sources))

    def taken_in(self) -> set[str]:
        with self.lock:
            return set().union(*self.done) if self.done else set()


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def loop_for(recorder: Recorder, stop: threading.Event, every: float = 60.0) -> EvaluationLoop:
    loop = EvaluationLoop(recorder.evaluate, recorder.evaluated, stop, remeasure_every=every)
    loop.start()
    return loop


def test_requests_made_while_an_evaluation_runs_are_merged_into_the_next(
    stop: threading.Event,
) -> None:
    recorder = Recorder(seconds=0.3)
    loop = loop_for(recorder, stop)
    loop.request("first")
    assert recorder.started.wait(5)  # the first evaluation is under way
    for n in range(500):
        loop.request(f"source-{n}")
    assert wait_for(lambda: len(recorder.taken_in()) == 501, timeout=5)
    # One evaluation for the first poll, one for the 500 that asked meanwhile.
    assert len(recorder.rounds) == 2
    assert recorder.rounds[1].sources == frozenset(f"source-{n}" for n in range(500))
    assert not any(r.remeasure for r in recorder.rounds)
    stop.set()
    loop.join(2)


def test_a_failed_evaluation_keeps_its_sources_for_the_next(stop: threading.Event) -> None:
    recorder = Recorder()
    recorder.fail = True
    loop = loop_for(recorder, stop)
    loop.request("a")
    assert wait_for(lambda: len(recorder.rounds) >= 1)
    assert recorder.taken_in() == set()
    recorder.fail = False
    assert wait_for(lambda: recorder.taken_in() == {"a"}, timeout=5)
    stop.set()
    loop.join(2)


def test_running_clocks_are_measured_again_on_their_schedule_not_per_request(
    stop: threading.Event,
) -> None:
    recorder = Recorder()
    loop = loop_for(recorder, stop, every=0.5)
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        loop.request("busy")
        time.sleep(0.02)
    stop.set()
    loop.join(2)
    remeasures = [r for r in recorder.rounds if r.remeasure]
    assert 2 <= len(remeasures) <= 4, len(remeasures)
    assert len(recorder.rounds) > 10


def test_lag_says_how_long_a_request_has_waited(stop: threading.Event) -> None:
    recorder = Recorder(seconds=1.0)
    loop = loop_for(recorder, stop)
    assert loop.lag() == 0.0
    loop.request("slow")
    time.sleep(0.5)
    assert 0.3 < loop.lag() < 1.5
    assert wait_for(lambda: recorder.taken_in() == {"slow"}, timeout=5)
    assert loop.lag() == 0.0
    stop.set()
    loop.join(2)
