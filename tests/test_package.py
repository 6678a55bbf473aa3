"""Package-level promises: numpy_gpt never loads torch, and the README's demo runs."""
import os
import pkgutil
import subprocess
import sys

import pytest

import numpy_gpt
from tests import child_env


def test_numpy_gpt_never_imports_torch():
    modules = [f"numpy_gpt.{m.name}" for m in pkgutil.iter_modules(numpy_gpt.__path__) if m.name != "__main__"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if k.startswith('torch'))\n"
            "print(len(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env())
    assert out.returncode == 0, out.stderr
    assert len(modules) >= 15


def test_demo_runs_and_answers_the_seeds(tmp_path, capsys):
    from numpy_gpt.demo import run
    result = run(out_dir=str(tmp_path), steps=30, sample_chars=40)
    for name, (answers, t_answers) in result["seeds"].items():
        assert len(set(answers.values())) == 1 and answers == t_answers
    assert os.path.getsize(tmp_path / "demo_loss.png") > 1000
    h_np, h_t = result["histories"]["numpy"], result["histories"]["torch"]
    assert h_np.loss[-1] < h_np.loss[0] - 0.5
    assert abs(h_np.eval[-1]["val_loss"] - h_t.eval[-1]["val_loss"]) < 1e-3
    assert len(result["sample"]) >= 40
    assert "healthy <EOS>" in capsys.readouterr().out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="shard processes need Linux")
@pytest.mark.real_row_blocks                     # the workers import numpy_gpt with its own block size
def test_demo_trains_in_shard_processes_with_the_losses_of_threads(tmp_path, threads):
    pytest.importorskip("threadpoolctl")
    from numpy_gpt.demo import run
    threads(2)
    kw = dict(out_dir=str(tmp_path), steps=6, sample_chars=5, with_torch=False)
    procs, plain = run(**kw), run(processes=False, **kw)
    assert procs["numpy_processes"] and "1 worker process" in procs["numpy_shards"]
    assert not plain["numpy_processes"] and plain["numpy_shards"] == "2 threads, 2 shard(s) per batch"
    a, b = procs["histories"]["numpy"], plain["histories"]["numpy"]
    assert a.loss == b.loss and a.eval == b.eval          # bit for bit: the same arithmetic
    assert procs["sample"] == plain["sample"]
    threads(1)
    one = run(**kw)
    assert not one["numpy_processes"] and one["numpy_shards"] == "1 thread"
    assert one["histories"]["numpy"].loss[0] == pytest.approx(a.loss[0], rel=1e-5)   # same batch, weights


# numpy_gpt modules with no torch_gpt twin, and why: each is NumPy machinery around the model,
# not a part of the model that torch would compute differently.
NUMPY_ONLY = {
    "__main__": "the command-line entry point (torch_gpt has its own cli.py)",
    "decode": "a faster KV-cache step; torch_gpt decodes with its model's forward",
    "gradcheck": "the finite-difference oracle, which must not depend on torch",
    "parallel": "threads for NumPy (torch has its own intra-op pool)",
    "processes": "shard worker processes for NumPy (Python's lock)",
    "reductions": "row sums and maxima on NumPy's fast paths (torch's kernels do this)",
    "parity_report": "numpy-gpt parity / gradcheck: the report that compares the two",
    "pictures": "attention and gradient pictures drawn from numpy_gpt",
    "plots": "loss curves",
    "templates": "starter files for `numpy-gpt check` (a package of text, not code to mirror)",
}


def test_torch_gpt_mirrors_numpy_gpt_file_for_file():
    import torch_gpt
    ours = {m.name for m in pkgutil.iter_modules(numpy_gpt.__path__)}
    theirs = {m.name for m in pkgutil.iter_modules(torch_gpt.__path__)}
    missing = ours - theirs - NUMPY_ONLY.keys()
    assert not missing, f"numpy_gpt modules without a torch_gpt twin (add one, or a reason in NUMPY_ONLY): {missing}"
    assert not (NUMPY_ONLY.keys() - ours), f"NUMPY_ONLY names modules that no longer exist: {NUMPY_ONLY.keys() - ours}"
    assert theirs - ours <= {"parity"}, f"torch_gpt modules without a numpy_gpt original: {theirs - ours}"
