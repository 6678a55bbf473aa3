"""Peak memory and time of loading weights: a checkpoint (to resume, or only its parameters to
generate) and a GPT-2-shaped weights file, each read the way numpy_gpt reads it and, beside it
in the same run, the way it was read through `safetensors.numpy.load_file` before.

    python -m benchmarks.load_memory [--config medium] [--gpt2] [--repeats 2]

Writes the files into a temporary folder (a checkpoint after one Trainer step of the config,
AdamW state included; with --gpt2 also random weights of GPT-2 124M's shapes, 475 MB), then
loads each in a fresh process (torch_gpt's ways too) and prints the process's peak resident memory above its imports
(VmHWM, its mark reset after the imports) and the seconds taken. The mapped pages of a file
count as resident while mapped, as `load_file`'s were. The figures in README.md's checkpoint and
GPT-2 paragraphs come from this tool. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .memory import maxrss_mb, reset_peak
from .workloads import CONFIGS

WAYS = {  # name: (file, what is loaded)
    "resume": ("checkpoint", "numpy_gpt.checkpoint.load_model: parameters and training state"),
    "generate": ("checkpoint", "load_checkpoint(weights_only=True) and a GPT on its parameters"),
    "resume, load_file": ("checkpoint", "load_file, the checksum, packed_params: before, for either"),
    "resume, torch": ("checkpoint", "torch_gpt.checkpoint.load"),
    "gpt2": ("gpt2", "numpy_gpt.gpt2.from_gpt2"),
    "gpt2, torch": ("gpt2", "torch_gpt.gpt2.from_gpt2"),
    "gpt2, load_file": ("gpt2", "safetensors.numpy.load_file, then packed_params (before)"),
}


def _load(way: str, path: str) -> None:
    from numpy_gpt import GPT, checkpoint
    from numpy_gpt.gpt2 import _hf_config, from_gpt2, gpt2_config
    from numpy_gpt.model import packed_params
    if way == "resume":
        checkpoint.load_model(path)
    elif way == "generate":
        c = checkpoint.load_checkpoint(path, weights_only=True)
        GPT(c.config, params=c.params)
    elif way == "resume, load_file":
        from safetensors.numpy import load_file
        tensors = load_file(path)
        checkpoint._checksum(tensors, checkpoint.read_header(path)[1])     # as load_checkpoint checked it
        params = {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "history.", "rng."))}
        packed_params(params)
    elif way == "resume, torch":
        import torch_gpt.checkpoint
        torch_gpt.checkpoint.load(path)
    elif way == "gpt2":
        from_gpt2(path)
    elif way == "gpt2, torch":
        import torch_gpt.gpt2
        torch_gpt.gpt2.from_gpt2(path)
    elif way == "gpt2, load_file":
        from safetensors.numpy import load_file
        cfg, named, _ = gpt2_config(load_file(path), hf_config=_hf_config(os.path.dirname(path)))
        GPT(cfg, params=packed_params(named, np.float32))


def child(way: str, path: str) -> None:
    import safetensors.numpy  # noqa: F401  (imported before the mark, as numpy_gpt is)

    import numpy_gpt.checkpoint  # noqa: F401
    import numpy_gpt.gpt2  # noqa: F401
    import torch_gpt.checkpoint  # noqa: F401
    import torch_gpt.gpt2  # noqa: F401
    base, _ = reset_peak()
    t0 = time.perf_counter()
    _load(way, path)
    print(f"{maxrss_mb() - base:.0f} {time.perf_counter() - t0:.3f}")


def make_files(folder: str, config: str, gpt2: bool) -> dict[str, str]:
    from numpy_gpt import GPT, GPTConfig, checkpoint
    from numpy_gpt.gpt2 import save_gpt2
    from numpy_gpt.train import TrainConfig, Trainer
    w = CONFIGS[config]
    cfg = GPTConfig(vocab_size=w.vocab_size, block_size=w.block_size, n_embd=w.n_embd,
                    n_layer=w.n_layer, n_head=w.n_head)
    model = GPT(cfg, dtype=np.float32)
    data = np.random.default_rng(0).integers(0, w.vocab_size, 20_000)
    trainer = Trainer(model, data, None, TrainConfig(steps=1, batch_size=2, eval_interval=0))
    trainer.run(progress=False)
    files = {"checkpoint": checkpoint.save(os.path.join(folder, "m.safetensors"), model, trainer)}
    if gpt2:
        g = GPT(GPTConfig(vocab_size=50257, block_size=1024, n_embd=768, n_layer=12, n_head=12))
        files["gpt2"] = save_gpt2(g, os.path.join(folder, "model.safetensors"))
    return files


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="medium", choices=sorted(CONFIGS))
    p.add_argument("--gpt2", action="store_true", help="also GPT-2 124M-shaped weights (475 MB)")
    p.add_argument("--repeats", type=int, default=2, help="fresh processes per way, taken in turn")
    p.add_argument("--child", nargs=2, metavar=("WAY", "PATH"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(*a.child)
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(folder, a.config, a.gpt2)
        ways = [w for w, (f, _) in WAYS.items() if f in files]
        got: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
        for _ in range(a.repeats):
            for w in ways:
                out = subprocess.run([sys.executable, "-m", "benchmarks.load_memory", "--child", w,
                                      files[WAYS[w][0]]], capture_output=True, text=True, check=True)
                mb, s = out.stdout.split()
                got[w].append((float(mb), float(s)))
        for f, path in files.items():
            print(f"{f} ({a.config if f == 'checkpoint' else 'GPT-2 124M shapes'}): "
                  f"{os.path.getsize(path) / 2**20:.0f} MB")
        for w in ways:
            mbs, secs = zip(*got[w])
            print(f"  {w:18s} peak {min(mbs):.0f}-{max(mbs):.0f} MB above the imports, "
                  f"{min(secs):.2f}-{max(secs):.2f} s   ({WAYS[w][1]})")


if __name__ == "__main__":
    main()
