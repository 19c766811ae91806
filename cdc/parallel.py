"""Run producers on a few threads and consume what they make on this one.

The snapshot readers use it: database reads release the GIL, so reading
several tables or key ranges at once overlaps their network and server time,
while converting and publishing stay on the caller's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

J = TypeVar("J")
T = TypeVar("T")

_DONE = object()


def parallel(jobs: Sequence[J], produce: Callable[[J], Iterator[T]], workers: int) -> Iterator[T]:
    """Items of `produce(job)` for every job, as they come; each job's items stay
    in order. The queue between the threads is bounded (back-pressure); a
    worker's exception is raised here; leaving the loop early stops the workers."""
    pending: queue.SimpleQueue[J] = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    count = max(1, min(workers, len(jobs)))
    out: queue.Queue[object] = queue.Queue(maxsize=count * 2)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    break
                for item in produce(job):
                    if not put(item):
                        return
        except BaseException as exc:  # re-raised in the caller's thread
            put(exc)
        put(_DONE)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < count:
            item = out.get()
            if item is _DONE:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
