"""Which arrays are still alive when a function runs: for tests that a backward lets go of what
it no longer needs (the model hands each cache over and keeps no reference to it)."""
from __future__ import annotations

import sys
import tracemalloc
import weakref

import pytest

# A backward can let go of its cache only if it holds the last reference to it. From Python 3.11
# on a call takes over its arguments' references; on 3.10 the caller's frame keeps them until the
# call returns, so the arrays are freed then instead (the same numbers, a little more memory).
HANDS_OVER_ARGUMENTS = pytest.mark.skipif(sys.version_info < (3, 11),
                                          reason="Python 3.10 keeps a call's arguments alive in the caller")


def alive_at_each_call(monkeypatch, module, name: str, arrays: list) -> list[list[bool]]:
    """Replace module.name by a spy that records, at each call, which of `arrays` are still alive
    (by weak reference, so the spy holds none of them), then calls the real function. Returns the
    list the records go into. The caller must drop its own references to the arrays."""
    refs = [weakref.ref(a) for a in arrays]
    records: list[list[bool]] = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        records.append([ref() is not None for ref in refs])
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, spy)
    return records


FIRST_CALL_SLACK = 256 << 10        # bytes the first call's peak may exceed the lowest by


def lowest_traced_peak(fn, tries: int = 3):
    """Call fn() `tries` times, each under its own tracemalloc session, and return its last result
    and the lowest of the peaks of traced memory.

    tracemalloc counts every thread's allocations: a run of the suite once read 128 KiB that the
    code under test had not allocated. A temporary copy the code makes at every call is in every
    peak, the lowest too, so a bound on the lowest still catches it. A copy made once and kept (a
    cache filled at the first call) is in the first peak alone: so the first may not exceed the
    lowest by more than FIRST_CALL_SLACK, which is above that foreign 128 KiB and far below the
    copies these tests look for."""
    peaks, result = [], None
    for _ in range(tries):
        result = None                                    # the last call's result is not counted
        tracemalloc.start()
        try:
            result = fn()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[0] <= min(peaks) + FIRST_CALL_SLACK, (
        f"the first call peaked at {peaks[0]} bytes, the lowest of {tries} at {min(peaks)}: "
        f"something allocated at the first call only (a cache it keeps?)")
    return result, min(peaks)
