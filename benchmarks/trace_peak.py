"""Where a numpy_gpt training step reaches its memory peak, and how high (tracemalloc).

    python -m benchmarks.trace_peak [--config tiny] [--threads 1] [--vocab V] [--block T]
                                    [--n-embd C] [--layers L] [--heads H] [--batch B]

Runs two training steps (forward, backward, AdamW), then traces a third with tracemalloc, which
sees every array NumPy allocates. Prints the step's peak of traced memory (what the step
allocates on top of the parameters, gradients' predecessors and AdamW state already held, in
MiB) and the Python call stack at the moment the peak was first reached. The --vocab ... --batch
options change the config's fields (a GPT-2-sized vocabulary: --vocab 50257).

Unlike benchmarks.memory (peak RSS of a whole process, what the targets are judged on), this
leaves out the runtime, the allocator's slack and pages never touched, and says where the peak
lies; it runs in this process and takes seconds.
"""
from __future__ import annotations

import argparse
import sys
import threading
import tracemalloc

import numpy as np

from .timing import fmt_threads, thread_limit
from .workloads import CONFIGS, make_step


def trace(step, depth: int = 10) -> tuple[float, list[str]]:
    """(peak MiB traced during one call of step, the stack where that peak was first reached)."""
    best: list = [0, []]

    def watch(frame, event, arg):
        current = tracemalloc.get_traced_memory()[0]
        if current > best[0]:
            stack, f = [], frame
            while f is not None and len(stack) < depth:
                stack.append(f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno} {f.f_code.co_name}")
                f = f.f_back
            best[:] = [current, stack]
    tracemalloc.start()
    sys.setprofile(watch)
    threading.setprofile(watch)
    try:
        step()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2 ** 20, best[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=1)
    for flag, field in (("--vocab", "vocab_size"), ("--block", "block_size"), ("--n-embd", "n_embd"),
                        ("--layers", "n_layer"), ("--heads", "n_head"), ("--batch", "batch_size")):
        p.add_argument(flag, type=int, default=None, dest=field)
    a = p.parse_args(argv)
    changes = {k: v for k, v in vars(a).items() if k not in ("config", "threads") and v is not None}
    w = CONFIGS[a.config].with_(**changes)
    with thread_limit(a.threads):
        step, _ = make_step("numpy", w, np.dtype("float32"))
        step()
        step()
        peak, stack = trace(step)
    print(f"{w}, {fmt_threads(a.threads)}: the step's traced peak is {peak:.1f} MiB, first reached in")
    print("\n".join("  " + line for line in stack))


if __name__ == "__main__":
    main()
