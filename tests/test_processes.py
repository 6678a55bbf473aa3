"""numpy_gpt.processes: shards after the first run in worker processes. A worker runs the very
arithmetic of a shard thread (one BLAS thread, the same rows, the same sum of gradients), so a
step with shard processes must equal the threaded step bit for bit; and a worker that fails or
dies must surface as a typed error, not a hang."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from numpy_gpt import GPT, GPTConfig, parallel
from numpy_gpt.loss import IGNORE_INDEX
from numpy_gpt.optim import AdamW

pytest.importorskip("threadpoolctl")
# The workers import numpy_gpt afresh, with its 256 KB row blocks; this process keeps them too.
pytestmark = pytest.mark.real_row_blocks
if not sys.platform.startswith("linux"):
    pytest.skip("shard processes need Linux", allow_module_level=True)

from numpy_gpt.processes import ShardProcessError, ShardProcesses  # noqa: E402
from tests import child_env  # noqa: E402
from tests.tolerances import SHARDED_LOSS, SHARDED_PARAMS_PROCESSES  # noqa: E402

CFG = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, pos_encoding="learned")


def batch(B=6, T=16, seed=0):
    r = np.random.default_rng(seed)
    x, y = r.integers(0, 50, (B, T)), r.integers(0, 50, (B, T))
    y[B // 2:, 3:] = IGNORE_INDEX              # shards with different numbers of kept targets
    return x, y


def train(procs: bool, n_threads: int, dtype, dropout=0.0, steps=3, replace=False, cfg: dict = CFG,
          optimize=True):
    """Losses, logits, gradients and parameters of `steps` AdamW steps (optimize=False: of
    `steps` forwards and backwards, no optimizer to look at the parameters)."""
    parallel.set_num_threads(n_threads)
    model = GPT(GPTConfig(**cfg, dropout=dropout), seed=0, dtype=dtype)
    workers = ShardProcesses(model) if procs else None
    try:
        opt = AdamW(model.params, lr=1e-2) if optimize else None
        out = []
        for step in range(steps):
            x, y = batch(seed=step)
            logits, loss = model.forward(x, y)
            if procs:                            # the workers really ran the later shards
                assert [type(c) for _, c in model._cache] == [dict] + [tuple] * (n_threads - 1)
            grads = model.backward()
            out.append((float(loss), logits, {k: g.copy() for k, g in grads.items()}, dict(model.masks)))
            if opt is not None:
                opt.step(grads)
            if replace:                          # code that swaps in new arrays, not in-place updates
                model.params = {k: p * 0.5 for k, p in model.params.items()}
                opt = AdamW(model.params, lr=1e-2)
        return out, {k: p.copy() for k, p in model.params.items()}
    finally:
        if workers is not None:
            workers.close()


def assert_same(a, b):
    (steps_a, params_a), (steps_b, params_b) = a, b
    for (la, za, ga, ma), (lb, zb, gb, mb) in zip(steps_a, steps_b):
        assert la == lb
        assert np.array_equal(za, zb)
        assert ga.keys() == gb.keys()
        for k in ga:
            assert np.array_equal(ga[k], gb[k]), k
        assert ma.keys() == mb.keys() and all(np.array_equal(ma[k], mb[k]) for k in ma)
    for k in params_a:
        assert np.array_equal(params_a[k], params_b[k]), k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [2, 3])
def test_process_shards_equal_thread_shards_bit_for_bit(threads, dtype, n_threads):
    assert_same(train(True, n_threads, dtype), train(False, n_threads, dtype))


def test_process_shards_with_dropout_use_the_whole_batch_masks(threads):
    assert_same(train(True, 2, np.float64, dropout=0.3), train(False, 2, np.float64, dropout=0.3))


def test_workers_see_replaced_parameter_arrays(threads):
    assert_same(train(True, 2, np.float64, replace=True), train(False, 2, np.float64, replace=True))


def _in_shared_memory(a: np.ndarray) -> bool:
    """Whether a lies in an mmap (the shared block) rather than in memory NumPy allocated."""
    import mmap
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return isinstance(a, mmap.mmap)


def test_parameters_move_into_shared_memory_and_back_with_their_values(threads):
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    before = {k: p.copy() for k, p in model.params.items()}
    held = model.params["h.0.attn.c_attn.weight"]
    with ShardProcesses(model) as workers:
        assert all(_in_shared_memory(p) for p in model.params.values())
        assert all(np.array_equal(model.params[k], before[k]) for k in before)
        with pytest.raises(ValueError, match="read-only"):    # left behind: an update would be lost
            held[...] = 0.0
        shared = dict(workers.params)
    assert not any(_in_shared_memory(p) for p in model.params.values())
    assert all(p.flags.writeable and p.flags.c_contiguous for p in model.params.values())
    assert all(np.array_equal(model.params[k], before[k]) for k in before)
    with pytest.raises(ValueError, match="read-only"):
        shared["wte.weight"][...] = 0.0


def test_workers_read_the_parameters_where_they_are_updated(threads):
    """A change made in place between forward and backward reaches the workers' backward, as it
    reaches the threads': both read model.params' arrays, with no copy made at the forward."""
    threads(2)
    x, y = batch()
    results = []
    for procs in (True, False):
        model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float64)
        workers = ShardProcesses(model) if procs else None
        model.forward(x, y)
        for p in model.params.values():
            p *= 1.5
        results.append(model.backward())
        if workers:
            workers.close()
    assert all(np.array_equal(results[0][k], results[1][k]) for k in results[1])


def test_parameters_of_another_dtype_are_refused(threads):
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float32)
    model.params["wte.weight"] = model.params["wte.weight"].astype(np.float64)
    with pytest.raises(ShardProcessError, match=r"model.params\['wte.weight'\] is float64\(50, 16\)"):
        ShardProcesses(model)
    assert model.params["wte.weight"].dtype == np.float64 and model.params["wte.weight"].flags.writeable


def test_a_worker_that_fails_to_start_leaves_the_parameters_alone(threads, monkeypatch):
    from numpy_gpt import processes
    threads(3)
    model = GPT(GPTConfig(**CFG), seed=0)
    before = dict(model.params)
    started = []

    class Failing(processes._Worker):
        def __init__(self, *args):
            if started:
                raise ShardProcessError("the second worker did not start")
            super().__init__(*args)
            started.append(self)

    monkeypatch.setattr(processes, "_Worker", Failing)
    with pytest.raises(ShardProcessError, match="did not start"):
        ShardProcesses(model)
    assert all(model.params[k] is before[k] and before[k].flags.writeable for k in before)
    assert started[0].proc.poll() is not None               # the first one was stopped
    assert model.shard_processes is None


def test_parameters_named_unlike_the_config_are_refused(threads):
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    model.params["extra"] = np.zeros(3, np.float32)
    with pytest.raises(ShardProcessError, match=r"unexpected \['extra'\]"):
        ShardProcesses(model)
    assert model.shard_processes is None


def test_process_shards_agree_with_one_thread(threads):
    """Not only with the threaded step: with the whole batch on one thread, to rounding."""
    (a, _), (b, _) = train(True, 2, np.float64, steps=1), train(False, 1, np.float64, steps=1)
    np.testing.assert_allclose(a[0][0], b[0][0], rtol=SHARDED_LOSS)
    for k in a[0][2]:
        np.testing.assert_allclose(a[0][2][k], b[0][2][k], **SHARDED_PARAMS_PROCESSES, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [2, 3])
def test_process_shards_match_torch_autograd(threads, dtype, n_threads):
    """Straight against torch, not only through the threaded step: a step whose later shards
    ran in worker processes, on random weights, with a random upstream gradient."""
    from tests.model_strategies import randomized
    from tests.test_model import compare, loss_backward
    threads(n_threads)
    model = randomized(GPTConfig(**CFG), 7, dtype)
    x, y = batch(seed=5)
    dloss = float(np.random.default_rng(5).standard_normal())
    with ShardProcesses(model):
        logits, loss = model.forward(x, y)
        assert [type(c) for _, c in model._cache] == [dict] + [tuple] * (n_threads - 1)   # workers ran
        grads = model.backward(dloss)
    compare("model[processes]", model, grads, logits, loss, loss_backward(x, y, dloss))


def test_dlogits_backward_and_forward_without_targets(threads):
    threads(2)
    x, _ = batch()
    g = np.random.default_rng(3).standard_normal((6, 16, 50))
    results = []
    for procs in (True, False):
        model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float64)
        workers = ShardProcesses(model) if procs else None
        logits, loss = model.forward(x)
        assert loss is None
        grads = model.backward(dlogits=g)
        results.append((logits, grads))
        if workers:
            workers.close()
    assert np.array_equal(results[0][0], results[1][0])
    assert all(np.array_equal(results[0][1][k], results[1][1][k]) for k in results[0][1])


def test_a_forward_without_grad_in_workers_equals_threads_and_no_backward_follows(threads):
    # The workers keep nothing either, and send back how many targets their loss averaged over,
    # which weights their shard's loss (batch() keeps different numbers in different shards).
    threads(3)
    x, y = batch()
    results = []
    for procs in (True, False):
        model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float64)
        workers = ShardProcesses(model) if procs else None
        try:
            results.append(model.forward(x, y, grad=False))
            with pytest.raises(RuntimeError, match="not one with grad=False"):
                model.backward()
            if procs:                                   # the workers serve a training step after it
                model.forward(x, y)
                model.backward()
        finally:
            if workers:
                workers.close()
    assert np.array_equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]


def test_a_dead_worker_raises_a_typed_error_and_close_still_works(threads):
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    workers = ShardProcesses(model)
    pid = workers.workers[0].proc.pid
    os.kill(pid, signal.SIGKILL)
    workers.workers[0].proc.wait()
    with pytest.raises(ShardProcessError, match=f"pid {pid}.*exited with code -9"):
        model.forward(*batch())
    workers.close()
    assert model.shard_processes is None
    model.forward(*batch())                     # threads again


def test_a_failing_worker_names_its_error(threads):
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    with ShardProcesses(model) as workers:
        workers.workers[0].send(("backward", (1.0, None)))    # no forward yet in that worker
        with pytest.raises(ShardProcessError, match="RuntimeError: backward before forward"):
            workers.workers[0].recv()
        _, loss = model.forward(*batch())                     # the worker still serves
        assert np.isfinite(loss)


def test_workers_follow_the_callers_errstate(threads):
    # The CLI silences overflow while training and reports a diverged run in one line; the
    # workers must run under the same np.errstate as the process that sends them a shard.
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    model.params["h.0.attn.c_attn.weight"][...] = 1e30      # scores overflow to inf, softmax gives NaN
    x, y = batch()
    with ShardProcesses(model) as workers:
        worker = workers.workers[0]
        with np.errstate(all="ignore"):
            model.forward(x, y)                             # hands the workers the parameters
        with np.errstate(all="raise"):                      # send() takes the sender's errstate
            worker.send(("forward", (x, y, {}, False)))
        with pytest.raises(ShardProcessError, match="FloatingPointError"):
            worker.recv()
        with np.errstate(all="ignore"):
            worker.send(("forward", (x, y, {}, False)))
        logits, loss, _ = worker.recv()
        # A handler (np.seterrcall) stays in this process; the worker warns instead, not fails.
        with np.errstate(all="call", call=lambda *a: None):
            worker.send(("forward", (x, y, {}, False)))
        worker.recv()
    assert not np.isfinite(logits).all() and not np.isfinite(loss)


def test_close_stops_the_workers(threads):
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    with ShardProcesses(model) as workers:
        procs = [w.proc for w in workers.workers]
        with pytest.raises(ShardProcessError, match="already has shard processes"):
            ShardProcesses(model)
    assert all(p.poll() == 0 for p in procs)
    assert model.shard_processes is None
    workers.close()                             # a second close does nothing


def test_workers_ignore_ctrl_c_and_sit_outside_the_terminals_process_group(threads):
    """Ctrl-C is for the training loop to handle (numpy-gpt train saves after the step)."""
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    with ShardProcesses(model) as workers:
        pid = workers.workers[0].proc.pid
        assert os.getpgid(pid) != os.getpgid(0)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.2)
        _, loss = model.forward(*batch())       # still serving
        assert np.isfinite(loss) and workers.workers[0].proc.poll() is None


def threaded_step(x, y, dtype=np.float64):
    model = GPT(GPTConfig(**CFG), seed=0, dtype=dtype)
    _, loss = model.forward(x, y)
    return float(loss), model.backward()


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_an_interrupted_step_kills_the_workers_and_the_model_goes_back_to_threads(threads, where):
    """Ctrl-C while the workers hold an unread reply must not leave later steps reading stale ones."""
    threads(3)
    x, y = batch()
    model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float64)
    workers = ShardProcesses(model)
    procs = [w.proc for w in workers.workers]
    real = getattr(model, "_" + where)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    if where == "backward":
        model.forward(x, y)
    setattr(model, "_" + where, interrupted)          # this process's shard, after the workers got theirs
    with pytest.raises(KeyboardInterrupt):
        model.forward(x, y) if where == "forward" else model.backward()
    setattr(model, "_" + where, real)
    assert model.shard_processes is None and all(p.poll() is not None for p in procs)
    _, loss = model.forward(x, y)
    grads = model.backward()
    want_loss, want = threaded_step(x, y)
    assert float(loss) == want_loss and all(np.array_equal(grads[k], want[k]) for k in want)
    workers.close()                                   # nothing left to do, and no error


def test_a_backward_cannot_reach_workers_that_did_not_run_its_forward(threads):
    threads(3)
    x, y = batch()
    model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float64)
    ShardProcesses(model)
    model.forward(x, y)
    model.shard_processes.close()
    with ShardProcesses(model):
        with pytest.raises(ShardProcessError, match="other or earlier shard processes"):
            model.backward()
        _, loss = model.forward(x, y)                 # the new workers serve their own forward
        grads = model.backward()
    want_loss, want = threaded_step(x, y)
    assert float(loss) == want_loss and all(np.array_equal(grads[k], want[k]) for k in want)


def test_a_copy_of_the_model_does_not_borrow_its_workers(threads):
    import copy
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    with ShardProcesses(model):
        twin = copy.copy(model)
        twin.params = {k: p * 0.5 for k, p in model.params.items()}
        with pytest.raises(ShardProcessError, match="serve another model"):
            twin.forward(*batch())


def test_workers_import_this_numpy_gpt_whatever_the_working_directory_holds(threads, tmp_path, monkeypatch):
    (tmp_path / "numpy_gpt").mkdir()
    (tmp_path / "numpy_gpt" / "__init__.py").write_text("raise ImportError('a stray numpy_gpt')\n")
    monkeypatch.chdir(tmp_path)
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    with ShardProcesses(model):
        _, loss = model.forward(*batch())
    assert np.isfinite(loss)


def test_needs_a_second_thread(threads):
    threads(1)
    with pytest.raises(ShardProcessError, match="at least one worker, got 0"):
        ShardProcesses(GPT(GPTConfig(**CFG)))


# ------------------------------------------------------------------ numpy-gpt train --processes
TRAIN = [sys.executable, "-m", "numpy_gpt", "train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
         "--block-size", "16", "--batch-size", "4", "--eval-interval", "10", "--eval-batches", "2",
         "--no-progress", "--no-plot", "--dtype", "float64"]
ENV = child_env(NUMPY_GPT_NUM_THREADS="2")


def test_train_with_processes_saves_the_threaded_runs_weights(tmp_path):
    from numpy_gpt.checkpoint import load_checkpoint
    paths = []
    for flags in ([], ["--processes"]):
        path = str(tmp_path / f"m{len(paths)}.safetensors")
        done = subprocess.run([*TRAIN, "--steps", "20", "--out", path, *flags], capture_output=True, text=True,
                              env=ENV, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        paths.append(path)
    assert "1 worker process" in done.stdout
    a, b = load_checkpoint(paths[0]), load_checkpoint(paths[1])
    assert a.step == b.step == 20
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_ctrl_c_with_processes_saves_after_the_step(tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group; the run must still save."""
    from numpy_gpt.checkpoint import load_checkpoint
    path = str(tmp_path / "m.safetensors")
    child = subprocess.Popen([*TRAIN, "--steps", "100000", "--out", path, "--save-interval", "5", "--processes"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path,
                             start_new_session=True)
    deadline = time.time() + 60
    while not os.path.exists(path) and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    at = load_checkpoint(path).step
    assert at > 0 and f"stopped by SIGINT at step {at}" in err


def test_train_processes_with_the_torch_backend_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch):
    from numpy_gpt.cli import main
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--backend", "torch", "--processes", "--steps", "1", "--no-plot", "--no-progress",
                 "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--processes works with --backend numpy only, not torch")


def test_dropping_the_model_without_close_stops_the_workers(threads):
    import gc
    threads(2)
    model = GPT(GPTConfig(**CFG), seed=0)
    ShardProcesses(model)
    model.forward(*batch())
    proc = model.shard_processes.workers[0].proc
    del model
    gc.collect()                                # the model and its ShardProcesses hold each other
    assert proc.wait(timeout=10) == 0


def worker_start(cfg, dtype=np.float64):
    """What ShardProcesses gives a worker at its start, for running its loop (_serve) here on
    in-memory pipes: the blocks' layout, the two shared blocks as (fd, mapping), parameters then
    gradients, the model's parameters written into the first, and the "init" request's arguments."""
    from numpy_gpt import processes
    from numpy_gpt.model import param_shapes
    layout, size = processes._layout(param_shapes(cfg), dtype)
    blocks = [processes._shared(size) for _ in range(2)]
    params = processes._views(blocks[0][1], layout, dtype)
    for name, p in GPT(cfg, seed=0, dtype=dtype).params.items():
        params[name][...] = p
    del params                                                             # no view outlives the mapping
    init = {"config": cfg, "dtype": np.dtype(dtype).str, "layout": layout, "size": size,
            "param_fd": blocks[0][0], "grad_fd": blocks[1][0]}               # the loop closes both fds
    return layout, blocks, init


def test_a_worker_lets_go_of_the_last_forwards_cache_before_it_makes_its_own(threads, monkeypatch):
    # An evaluation's forward leaves the worker a cache that no backward frees; the next forward
    # must drop it before computing, or both are alive at once (a Trainer with evaluations at the
    # medium config: the worker peaked 414 MB above its start, 297 since; python -m
    # benchmarks.trainer_memory --eval-interval 1 --processes). The worker's loop runs
    # here, on in-memory pipes, so that a spy can watch the model it builds.
    import io
    import pickle
    import weakref

    from numpy_gpt import processes
    threads(2)
    _, blocks, init = worker_start(GPTConfig(**CFG))
    x, y = batch(B=2)
    forward = ("forward", (x, y, {}, False, None, 0, False))               # an evaluation: no backward
    requests = io.BytesIO(b"".join(pickle.dumps(m) for m in [("init", init), forward, forward, ("exit", None)]))
    refs, alive = [], []
    real = GPT._forward

    def spy(self, *args, **kwargs):
        alive.append([r() is not None for r in refs])
        out = real(self, *args, **kwargs)
        refs.append(weakref.ref(out[2]["loss"][0]))                         # the softmax this cache keeps
        return out
    monkeypatch.setattr(GPT, "_forward", spy)
    replies = io.BytesIO()
    try:
        processes._serve(requests, replies)
    finally:
        for _, mapping in blocks:
            mapping.close()
    replies.seek(0)
    assert [pickle.load(replies)[0] for _ in range(3)] == ["ok"] * 3
    assert alive == [[], [False]]


@pytest.mark.parametrize("tie, pos, norm", [(True, "learned", "pre"), (False, "sinusoidal", "post"),
                                            (True, "learned", "none")])
def test_a_backward_into_out_puts_each_gradient_there_and_keeps_no_copy_of_them_all(tie, pos, norm):
    # A shard worker's backward writes into its gradient block, shared with the parent, as each
    # gradient is made (GPT._backward(out=...)): the same bits, in out's own arrays, and never all
    # the gradients privately as well (12 MB at medium). The model here is mostly parameters (a
    # few tokens, wide layers), so a private set would add most of their size to the peak.
    from tests.lifetimes import lowest_traced_peak
    cfg = GPTConfig(vocab_size=64, block_size=8, n_layer=4, n_head=2, n_embd=128, pos_encoding=pos, norm=norm,
                    tie_weights=tie)
    model = GPT(cfg, seed=0, dtype=np.float64)
    x, y = batch(B=1, T=4)

    def caches(n):                                                # n forwards' caches, made untraced
        out = []
        for _ in range(n):
            model.forward(x, y)
            (_, c), = model._cache
            model._cache = None
            out.append(c)
        return out
    mine = caches(3)
    want, private_peak = lowest_traced_peak(lambda: model._backward(mine.pop(), 1.0, None))
    out = {k: np.full_like(p, np.nan) for k, p in model.params.items()}
    mine = caches(3)
    got, out_peak = lowest_traced_peak(lambda: model._backward(mine.pop(), 1.0, None, out=out))
    assert list(got) == list(want) and all(got[k] is out[k] for k in out)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    param_bytes = sum(p.nbytes for p in model.params.values())
    assert out_peak < private_peak - param_bytes / 2, (out_peak, private_peak, param_bytes)


def test_a_worker_backward_writes_into_its_shared_gradient_block(threads, monkeypatch):
    # _serve hands GPT._backward the views of the gradient block it shares with the parent as out,
    # rather than copying a returned set of private gradients into them.
    import io
    import mmap
    import pickle

    from numpy_gpt import processes
    threads(2)
    layout, blocks, init = worker_start(GPTConfig(**CFG))
    x, y = batch(B=2)
    requests = io.BytesIO(b"".join(pickle.dumps(m) for m in [
        ("init", init), ("forward", (x, y, {}, True, None, 0, False)), ("backward", (1.0, None)), ("exit", None)]))
    seen, real = [], GPT._backward

    def spy(self, c, *args, out=None):
        got = real(self, c, *args, out=out)
        seen.append((out, {k: g.copy() for k, g in got.items()}))
        return got
    monkeypatch.setattr(GPT, "_backward", spy)
    replies = io.BytesIO()
    try:
        processes._serve(requests, replies)
        grads = processes._views(blocks[1][1], layout, np.float64)
        replies.seek(0)
        assert [pickle.load(replies)[0] for _ in range(3)] == ["ok"] * 3
        (out, made), = seen
        assert out is not None and sorted(out) == sorted(grads)

        def memory_of(a):
            while isinstance(a, np.ndarray):
                a = a.base
            return a
        assert all(isinstance(memory_of(out[k]), mmap.mmap) for k in out)       # the worker's shared mapping
        for k in grads:                                                         # and what the parent reads
            np.testing.assert_array_equal(grads[k], made[k], err_msg=k)
        del grads, out
    finally:
        seen.clear()
        for _, mapping in blocks:
            mapping.close()


# ------------------------------------------------------------------ arrays of odd byte sizes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vocab,norm", [(53, "none"), (56, "none"), (53, "pre"), (56, "pre")])
def test_parameters_whose_sizes_are_not_multiples_of_64_bytes_keep_their_own_room(threads, dtype, vocab, norm):
    """Each array gets its own padded room in the shared blocks (parameters and gradients): an
    array's tail must not share bytes with the next array, which would change both. With 6
    channels a bias takes 24 or 48 bytes, and a (53, 6) float32 embedding 1272; the last array
    of the block is one such (vocab 53) or a whole multiple of 64 bytes (56). No optimizer: AdamW
    refuses parameters that share memory, and this is about the step itself."""
    from numpy_gpt.model import param_shapes
    cfg = dict(CFG, vocab_size=vocab, n_embd=6, norm=norm, tie_weights=False)
    # The case this test is for: some arrays' byte sizes leave a remainder modulo 64.
    assert any(int(np.prod(s)) * np.dtype(dtype).itemsize % 64 for s in param_shapes(GPTConfig(**cfg)).values())
    assert_same(train(True, 2, dtype, cfg=cfg, steps=1, optimize=False),
                train(False, 2, dtype, cfg=cfg, steps=1, optimize=False))


def test_more_shards_than_workers_and_this_process_is_an_error_naming_both(threads):
    """Three threads cut a batch into three shards; one worker and this process can run two.
    The third must not be dropped quietly (its logits never written, its rows out of the loss)."""
    threads(3)
    model = GPT(GPTConfig(**CFG), seed=0)
    x, y = batch(B=6)
    with ShardProcesses(model, n_workers=1) as workers:
        with pytest.raises(ShardProcessError, match="3 shards for 1 workers and this process"):
            model.forward(x, y)
        assert workers.workers[0].proc.poll() is None      # refused before anything was sent
    threads(2)                                              # two shards: one worker is enough
    with ShardProcesses(model, n_workers=1):
        _, loss = model.forward(x, y)
    assert np.isfinite(loss)


def overflowing_forward(procs: bool, x, y) -> list:
    """The floating-point errors a handler set with np.seterrcall saw in a forward whose
    attention scores overflow (float32), with or without shard processes."""
    model = GPT(GPTConfig(**CFG), seed=0, dtype=np.float32)
    model.params["h.0.attn.c_attn.weight"][...] = 1e30      # scores overflow to inf, softmax gives NaN
    seen = []
    workers = ShardProcesses(model) if procs else None
    try:
        with np.errstate(all="call", call=lambda kind, flag: seen.append(kind)):
            model.forward(x, y)
    finally:
        if workers is not None:
            workers.close()
    return seen


def test_a_floating_point_error_under_a_call_handler_is_a_warning_in_the_worker(threads, capfd):
    """The handler lives in this process and cannot run in a worker; the worker turns "call"
    into "warn" (see _Worker.send), so its shard's overflow shows on stderr, not nowhere."""
    threads(2)
    x, y = batch()
    assert overflowing_forward(False, x, y)                  # oracle: the threads fire the handler
    assert "RuntimeWarning" not in capfd.readouterr().err    # and print nothing: a warning below is the worker's
    assert overflowing_forward(True, x, y)                   # this process's own shard still does
    err = capfd.readouterr().err                             # the worker writes to our stderr
    assert "RuntimeWarning" in err and "overflow encountered" in err, err


def test_a_worker_serves_every_request_on_one_blas_thread_with_its_kernels_inline(threads, monkeypatch):
    """_worker_main holds parallel.one_thread() around the whole serving loop. Its environment
    pins one BLAS thread too, but only for a library that reads it at load time."""
    import threadpoolctl

    from numpy_gpt import processes
    threads(2)
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    seen = {}

    def serve(inp, out):
        seen.update(blas=blas.info()[0]["num_threads"], serial=parallel._local.serial)
    monkeypatch.setattr(processes, "_serve", serve)
    r, w = os.pipe()
    before = signal.getsignal(signal.SIGINT)
    try:
        with blas.limit(limits=2):
            processes._worker_main(w)                 # closes w when it returns
            assert blas.info()[0]["num_threads"] == 2
    finally:
        signal.signal(signal.SIGINT, before)          # the worker ignores Ctrl-C; this process must not
        os.close(r)
    assert seen == {"blas": 1, "serial": True}
    assert not parallel._local.serial
