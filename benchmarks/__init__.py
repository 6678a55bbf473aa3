"""Benchmarks: numpy_gpt against torch_gpt (eager and torch.compile) on the CPU, in one run.

    python -m benchmarks.run            # the full suite (10-30 minutes on 2 cores)
    python -m benchmarks.run --quick    # a smoke run for CI (under 2 minutes)

Modules:
    timing    interleaved repeats, thread limits, statistics, pair-by-pair ratios
    machine   CPU/library description and the NumPy BLAS matmul peak
    workloads the model configurations, the FLOP formula, training steps for each implementation
    layers    per-layer forward and forward+backward cases
    memory    peak RSS of a few training steps, one subprocess per (implementation, config)
    report    markdown tables and matplotlib plots
    profile   cProfile of one numpy_gpt training step, grouped by layer file
    run       the command line that ties them together

Nothing here imports torch at module level, so `benchmarks.memory --impl numpy` measures a
process that never loaded torch.
"""
