"""The scoring workers' fair sharing: results in order, round robin between requests, errors, shutdown."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from pyfunc import fair_pool
from pyfunc.fair_pool import FairPool

WAIT_S = 10.0


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


@pytest.fixture
def pool():
    workers = FairPool(2, thread_name_prefix="test-pool")
    yield workers
    workers.shutdown()


def test_results_come_back_in_the_callers_order_whoever_ran_them(pool):
    callers = [
        threading.Thread(target=lambda k=k: results.__setitem__(k, pool.map(lambda x: x * k, range(50))))
        for k in range(8)
    ]
    results = {}
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT_S)
    assert results == {k: [x * k for x in range(50)] for k in range(8)}


def test_a_one_item_request_waits_for_one_item_of_a_long_request_not_for_all_of_it():
    single = FairPool(1, thread_name_prefix="test-single")
    ran: list[str] = []
    gate = threading.Event()

    def long_item(index: int) -> int:
        if index == 0:
            gate.wait(WAIT_S)  # hold the only worker until the short request is queued behind us
        ran.append(f"long{index}")
        return index

    long_request = threading.Thread(target=single.map, args=(long_item, range(20)))
    long_request.start()
    wait_until(lambda: single._line.waiting, "the long request to be queued")
    short_request = threading.Thread(target=single.map, args=(lambda _: ran.append("short"), [0]))
    short_request.start()
    wait_until(lambda: len(single._line.waiting) == 2, "the short request to be queued behind the long one")
    gate.set()
    short_request.join(WAIT_S)
    long_request.join(WAIT_S)
    single.shutdown()
    # FIFO would run long0..long19, then short; round robin runs the short request's one item after the
    # item in flight and at most one more of the request already in line.
    assert ran.index("short") <= 2 and len(ran) == 21
    assert [item for item in ran if item != "short"] == [f"long{index}" for index in range(20)]


def test_the_first_error_reaches_the_caller_and_its_other_items_are_dropped():
    single = FairPool(1, thread_name_prefix="test-error")
    calls = []

    def fails_at_two(index: int) -> int:
        calls.append(index)
        if index == 2:
            raise ValueError("bad batch 2")
        return index

    with pytest.raises(ValueError, match="bad batch 2"):
        single.map(fails_at_two, range(100))
    assert calls == [0, 1, 2]  # nothing after the failure was started
    assert single.map(lambda x: x + 1, [1, 2]) == [2, 3]  # and the pool still serves
    single.shutdown()


def test_an_empty_request_returns_at_once(pool):
    assert pool.map(lambda x: x, []) == []


def test_after_shutdown_the_workers_exit_and_new_requests_are_refused():
    workers = FairPool(2, thread_name_prefix="test-shutdown")
    assert workers.map(str, [1, 2, 3]) == ["1", "2", "3"]
    workers.shutdown(wait=True)
    assert workers.closed and not any(thread.is_alive() for thread in workers._threads)
    with pytest.raises(RuntimeError, match="shut down"):
        workers.map(str, [1])


def test_a_pool_nobody_references_any_more_lets_its_workers_exit():
    """A model loaded again for every Spark task must not leave its workers behind each time."""
    workers = FairPool(2, thread_name_prefix="test-dropped")
    assert workers.map(str, [1, 2]) == ["1", "2"]
    threads = workers._threads
    del workers
    gc.collect()
    wait_until(lambda: not any(thread.is_alive() for thread in threads), "the dropped pool's workers to exit")


def test_a_worker_keeps_nothing_of_a_request_so_a_model_that_owns_its_pool_can_be_dropped():
    """The served models submit a bound method of themselves: a worker that kept its last request kept the
    model and its pool alive, until the exit hook woke it and it freed a torch model during finalisation."""

    class Owner:
        def __init__(self) -> None:
            self.pool = FairPool(1, thread_name_prefix="test-owner")

        def double(self, x: int) -> int:
            return 2 * x

    owner = Owner()
    assert owner.pool.map(owner.double, [1, 2]) == [2, 4]
    threads, dropped = owner.pool._threads, weakref.ref(owner)
    del owner  # the worker may still be returning from the item: give it a moment, not forever
    wait_until(lambda: gc.collect() >= 0 and dropped() is None, "the worker to let go of the request it ran")
    wait_until(lambda: not any(thread.is_alive() for thread in threads), "the dropped owner's workers to exit")


def test_at_exit_the_live_pools_are_closed_and_their_workers_joined_before_finalisation():
    workers = FairPool(2, thread_name_prefix="test-exit")
    assert workers.map(str, [1]) == ["1"]
    assert workers in fair_pool._live_pools  # what the exit hook shuts down (the other tests' pools stay up)
    fair_pool._close_and_join([workers], fair_pool.EXIT_WAIT_S)
    assert workers.closed and not any(thread.is_alive() for thread in workers._threads)


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        FairPool(0)
