"""Scoring workers shared by concurrent requests, which take one batch from each request in turn.

MLflow's scoring server calls `predict` from a thread per request, and every request's batches go to
the same few workers (one per core). A first-in-first-out pool makes a one-tweet request wait until
every batch queued before it has run: behind a dashboard's 100-row file chunk that is 100 graph calls,
and behind a 2,000-row request, seconds. Here the workers serve the waiting requests round robin, one
batch each, so a request waits for at most one batch of each request ahead of it; a large request
still gets every idle cycle (docs/serving.md, "Fair scheduling").

`concurrent.futures` has no fair executor: its pools keep one shared FIFO queue. Like its pools, the
workers hold only the line of waiting requests, never the pool, and nothing of a request once its item
is done: a request's function is usually a bound method of the model that owns the pool, so a worker that
kept its last request would keep the model, and with it the pool, alive. A pool nobody references any
more (a model loaded again for each Spark task) closes its line and its workers exit.

At interpreter exit the live pools are shut down and their workers joined (for at most `EXIT_WAIT_S`)
before Python finalises: a daemon worker still running at finalisation that frees a torch tensor or
returns from a torch op retakes the GIL inside C++ code that may not unwind, and the thread exit that
CPython forces there aborts the process ("terminate called without an active exception").
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

EXIT_WAIT_S = 5.0  # at exit, how long the workers may take to finish what is queued


class _Request(Generic[Item, Result]):
    """One caller's batches: what is left to start, what came back, and the first error."""

    def __init__(self, function: Callable[[Item], Result], items: Sequence[Item]) -> None:
        self.function = function
        self.items = items
        self.next_index = 0
        self.results: list[Result | None] = [None] * len(items)
        self.running = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def has_work(self) -> bool:
        return self.error is None and self.next_index < len(self.items)

    def finished(self) -> bool:
        return self.running == 0 and not self.has_work()


class _Line:
    """The waiting requests, shared by a pool and its workers."""

    def __init__(self) -> None:
        self.waiting: deque[_Request] = deque()
        self.changed = threading.Condition()
        self.closed = False

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def next(self) -> tuple[_Request, int] | None:
        """The next request's next item, the request moved to the back of the line; None once closed and idle."""
        with self.changed:
            while not self.waiting:
                if self.closed:
                    return None
                self.changed.wait()
            request = self.waiting.popleft()
            index = request.next_index
            request.next_index += 1
            request.running += 1
            if request.has_work():
                self.waiting.append(request)
            return request, index

    def finish(self, request: _Request, index: int, result: object, error: BaseException | None) -> None:
        """Record one item's outcome; the first error drops the request's items not yet started."""
        with self.changed:
            request.running -= 1
            if error is None:
                request.results[index] = result
            elif request.error is None:
                request.error = error
                if request in self.waiting:
                    self.waiting.remove(request)
            if request.finished():
                request.done.set()


def _work(line: _Line) -> None:
    while _serve_one(line):
        pass


def _serve_one(line: _Line) -> bool:
    """Run the next item; False once the line is closed and idle.

    A function of its own, so the request, its function and its result go with this frame: between
    items the worker references nothing but the line.
    """
    task = line.next()
    if task is None:
        return False
    request, index = task
    try:
        result, error = request.function(request.items[index]), None
    except BaseException as raised:  # handed to the caller, who raises it
        result, error = None, raised
    line.finish(request, index, result, error)
    return True


class FairPool:
    """A fixed set of worker threads serving the waiting requests round robin, one item at a time."""

    def __init__(self, workers: int, thread_name_prefix: str = "fair-pool") -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._line = _Line()
        self._threads = [
            threading.Thread(target=_work, args=(self._line,), name=f"{thread_name_prefix}_{index}", daemon=True)
            for index in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        weakref.finalize(self, self._line.close)  # unreferenced: the workers finish the line, then exit
        _live_pools.add(self)

    @property
    def closed(self) -> bool:
        return self._line.closed

    def map(self, function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
        """Run `function` on every item on the workers, sharing them fairly with other callers.

        Args:
            function: called once per item, on a worker thread.
            items: the caller's batches.

        Returns:
            The results, in the order of `items`.

        Raises:
            RuntimeError: the pool is shut down.
            BaseException: the first error `function` raised; the caller's items not yet started are dropped.
        """
        if not items:
            return []
        request = _Request(function, items)
        line = self._line
        with line.changed:
            if line.closed:
                raise RuntimeError("the scoring pool is shut down")
            line.waiting.append(request)
            line.changed.notify(min(len(items), self.workers))
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.results  # type: ignore[return-value]

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking requests; the workers finish what is queued, then exit.

        Args:
            wait: block until every worker has exited.
        """
        self._line.close()
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()


_live_pools: weakref.WeakSet[FairPool] = weakref.WeakSet()


def _close_and_join(pools: list[FairPool], wait_s: float) -> None:
    """Close every pool, then join their workers, all of them within `wait_s` seconds."""
    for pool in pools:
        pool._line.close()
    deadline = time.monotonic() + wait_s
    for pool in pools:
        for thread in pool._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


@atexit.register
def _shutdown_live_pools() -> None:
    """At exit, before finalisation can catch a worker mid-item: close the live pools, join their workers."""
    _close_and_join(list(_live_pools), EXIT_WAIT_S)
