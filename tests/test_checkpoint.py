"""Checkpoints: one safetensors file per run, written atomically, read by both implementations,
resumed bit for bit; and every way a checkpoint can be bad gives a CheckpointError."""
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import torch_gpt
import torch_gpt.gpt2
from numpy_gpt import GPT, GPTConfig
from numpy_gpt import checkpoint as ck
from numpy_gpt.errors import (CheckpointCorruptError, CheckpointError, CheckpointMismatchError,
                              CheckpointNotFoundError)
from numpy_gpt.tokenizers import CharTokenizer
from numpy_gpt.train import Trainer, TrainConfig
from tests import child_env
from tests.lifetimes import lowest_traced_peak
from tests.parity import assert_close
from torch_gpt import checkpoint as tck
from torch_gpt.train import Trainer as TorchTrainer

ENV = child_env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, pos_encoding="learned")
_r = np.random.default_rng(0)
DATA = np.where(_r.random(500) < 0.1, _r.integers(0, 11, 500), np.arange(500) * 3 % 11)


def trained(steps=5, dtype=np.float32, optimizer="adamw", seed=0):
    model = GPT(CFG, seed=seed, dtype=dtype)
    trainer = Trainer(model, DATA, DATA[:100], TrainConfig(steps=20, batch_size=2, eval_interval=3,
                                                            optimizer=optimizer, seed=seed))
    trainer.run(steps=steps, progress=False)
    return model, trainer


def test_roundtrip_holds_everything(tmp_path):
    model, trainer = trained()
    tok = CharTokenizer("abcdefghijk")
    path = ck.save(tmp_path / "a.safetensors", model, trainer, tok, run={"data": None})
    loaded, c = ck.load_model(path)
    assert c.config == CFG and c.step == 5 and c.tokenizer == tok and c.train_config == trainer.config
    assert all(np.array_equal(loaded.params[k], v) and loaded.params[k].dtype == v.dtype
               for k, v in model.params.items())
    want = trainer.state_dict()
    got = c.trainer_state
    assert got["rng"] == want["rng"] and got["model_rng"] == want["model_rng"]
    assert got["history"] == want["history"]
    for buf in ("exp_avg", "exp_avg_sq"):
        assert all(np.array_equal(got["optimizer"][buf][k], v) for k, v in want["optimizer"][buf].items())
    assert got["optimizer"]["step"] == 5
    meta = c.metadata
    assert meta["format"] == "numpy-gpt checkpoint" and json.loads(meta["config"]) == CFG.to_dict()
    assert c.run == {"backend": "numpy", "data": None}


def test_a_torch_user_opens_it_with_safetensors(tmp_path):
    model, trainer = trained()
    path = ck.save(tmp_path / "a.safetensors", model, trainer)
    from safetensors import safe_open
    from safetensors.torch import load_file
    sd = {k: v for k, v in load_file(path).items() if not k.startswith(("optimizer.", "history.", "rng."))}
    with safe_open(path, framework="pt") as f:
        cfg = GPTConfig.from_dict(json.loads(f.metadata()["config"]))
    t = torch_gpt.GPT(cfg)
    t.load_state_dict(sd)                                     # strict: every key, every shape
    idx = np.array([[1, 2, 3, 4]])
    model.training = False
    np.testing.assert_allclose(t(torch.from_numpy(idx))[0].detach().numpy(), model.forward(idx)[0], atol=1e-5)


def test_the_writer_makes_files_that_safetensors_reads_as_it_reads_its_own(tmp_path):
    # Every dtype the writer names, odd sizes (so that narrow tensors would misalign wide ones),
    # empty, 0-d, transposed and big-endian arrays: safetensors, which checks the layout (offsets
    # contiguous, covering the data), reads back what its own save() would have written.
    from safetensors import safe_open
    from safetensors.numpy import load, load_file, save
    r = np.random.default_rng(0)
    tensors = {"f64": r.normal(size=(3, 5)), "f32": r.normal(size=7).astype(np.float32),
               "f16": r.normal(size=3).astype(np.float16), "i64": r.integers(-9, 9, 5),
               "i32": r.integers(-9, 9, 3).astype(np.int32), "i16": np.arange(3, dtype=np.int16),
               "i8": np.arange(-2, 3, dtype=np.int8), "u8": np.arange(5, dtype=np.uint8),
               "u16": np.arange(3, dtype=np.uint16), "u32": np.arange(3, dtype=np.uint32),
               "u64": np.arange(3, dtype=np.uint64), "bool": np.array([True, False, True]),
               "empty": np.zeros((0, 4), np.float32), "scalar": np.array(2.5),
               "transposed": r.normal(size=(4, 3)).astype(np.float32).T,
               "big-endian": np.arange(4, dtype=">f8")}
    meta = {"format": "x", "note": "ünïcode"}
    path = tmp_path / "w.safetensors"
    ck._atomic_write(path, ck.safetensors_writer(tensors, meta))
    ours, theirs = load_file(path), load(save(tensors, metadata=meta))
    assert ours.keys() == theirs.keys() == tensors.keys()
    for k in tensors:
        assert ours[k].dtype == theirs[k].dtype and ours[k].shape == tensors[k].shape, k
        np.testing.assert_array_equal(ours[k], tensors[k], err_msg=k)
    with safe_open(path, framework="np") as f:
        assert f.metadata() == meta
    head = path.read_bytes()[:8]
    assert (8 + int.from_bytes(head, "little")) % 8 == 0                    # the data starts aligned
    table, _ = ck.read_header(path)
    for k, t in table.items():                                              # each tensor at a multiple of its width
        assert t["data_offsets"][0] % tensors[k].dtype.itemsize == 0, k
    with pytest.raises(TypeError, match="complex"):
        ck.safetensors_writer({"complex": np.zeros(2, np.complex64)}, {})


def test_the_writer_refuses_before_writing_what_safetensors_could_not_read(tmp_path, monkeypatch):
    # safetensors.numpy.save refused these; a file written anyway would replace a good checkpoint
    # with one that cannot be loaded.
    a = {"a": np.zeros(2, np.float32)}
    for tensors, meta in ((a, {"n": 1}), (a, {1: "x"}), ({3: a["a"]}, {}), ({"n": a["a"]}, {"n": 1}),
                          ({"__metadata__": a["a"]}, {})):
        with pytest.raises(TypeError, match="must be strings"):
            ck._atomic_write(tmp_path / "x.safetensors", ck.safetensors_writer(tensors, meta))
    assert ck._MAX_HEADER == 100_000_000                                  # safetensors' MAX_HEADER_SIZE
    monkeypatch.setattr(ck, "_MAX_HEADER", 200)
    ck.safetensors_writer(a, {"k": "v" * 100})                             # a header of 184 bytes
    with pytest.raises(ValueError, match="more than the 200"):
        ck.safetensors_writer(a, {"k": "v" * 200})
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_safetensors_saves_and_loads(tmp_path, monkeypatch):
    # Both ways are numpy_gpt's own (safetensors_writer, read_tensors): a machine without the
    # optional package keeps its weights and resumes from them, and the package reads the file.
    model, trainer = trained(steps=2)
    for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")] + ["safetensors"]:
        monkeypatch.setitem(sys.modules, name, None)                     # import safetensors fails
    path = ck.save(tmp_path / "n.safetensors", model, trainer)
    loaded, c = ck.load_model(path)
    assert c.step == 2 and all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())
    resumed = Trainer(loaded, DATA, None, trainer.config)
    ck.restore_trainer(resumed, c)
    assert resumed.step == 2
    monkeypatch.undo()
    from safetensors.numpy import load_file
    assert all(np.array_equal(load_file(path)[k], v) for k, v in model.params.items())


def test_big_endian_parameters_save_and_load(tmp_path):
    # The file holds little-endian bytes, and the checksum must be of those, not of the arrays given.
    model, trainer = trained(steps=2)
    params = {k: v.astype(">f4") for k, v in model.params.items()}
    c = ck.load_checkpoint(ck.save_checkpoint(tmp_path / "b.safetensors", CFG, params,
                                              trainer_state=trainer.state_dict()))
    assert all(np.array_equal(c.params[k], v) and c.params[k].dtype == np.float32 for k, v in model.params.items())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_saving_makes_no_copy_of_the_arrays(tmp_path, monkeypatch, backend):
    # safetensors.numpy.save builds the file in memory from a copy of every tensor: twice the
    # checkpoint; and a trainer's state_dict() copies the optimizer's buffers. A save reads the
    # parameters and AdamW's two buffers (1.6 MB each for wte here) where they are.
    cfg = GPTConfig(**{**CFG.to_dict(), "vocab_size": 50_000})
    if backend == "numpy":
        model = GPT(cfg, seed=0)
        trainer = Trainer(model, DATA, None, TrainConfig(steps=2, batch_size=2, eval_interval=0))
        save = ck.save
    else:
        model = torch_gpt.GPT(cfg)
        trainer = TorchTrainer(model, DATA, None, TrainConfig(steps=2, batch_size=2, eval_interval=0))
        save = tck.save
    trainer.run(progress=False)
    if backend == "torch":                  # tracemalloc sees NumPy's allocations, not torch's
        real, shared = tck.save_checkpoint, []

        def spy(path, config, params, **kwargs):
            live = dict(model.state_dict())
            shared.extend(np.shares_memory(a, live[k].numpy()) for k, a in params.items())
            return real(path, config, params, **kwargs)
        monkeypatch.setattr(tck, "save_checkpoint", spy)
    _, peak = lowest_traced_peak(lambda: save(tmp_path / "m.safetensors", model, trainer))
    assert peak < 400_000, peak
    if backend == "torch":
        assert shared and all(shared)


def test_sgd_and_a_fresh_trainer_save_too(tmp_path):
    model, trainer = trained(steps=3, optimizer="sgd")
    c = ck.load_checkpoint(ck.save(tmp_path / "s.safetensors", model, trainer))
    assert set(c.trainer_state["optimizer"]["momentum_buffer"]) == set(model.params)
    model = GPT(CFG)
    fresh = Trainer(model, DATA, None, TrainConfig(steps=4, batch_size=2, eval_interval=0))
    c = ck.load_checkpoint(ck.save(tmp_path / "f.safetensors", model, fresh))
    assert c.step == 0 and c.trainer_state["history"]["loss"] == []
    Trainer(GPT(CFG), DATA, None, fresh.config).load_state_dict(c.trainer_state)


# ---------------------------------------------------------------------------- bad files
@pytest.fixture
def good(tmp_path):
    model, trainer = trained()
    return ck.save(tmp_path / "good.safetensors", model, trainer, CharTokenizer("abcdefghijk"))


def test_missing(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="nope.safetensors not found") as e:
        ck.load_checkpoint(tmp_path / "nope.safetensors")
    assert isinstance(e.value, FileNotFoundError)


def test_truncated_anywhere(good):
    raw = open(good, "rb").read()
    for cut in [0, 3, 8, 20, 200, len(raw) // 2, len(raw) - 1]:
        with open(good, "wb") as f:
            f.write(raw[:cut])
        with pytest.raises(CheckpointCorruptError) as e:
            ck.load_checkpoint(good)
        assert good in str(e.value)
        said = str(e.value).replace(good, "FILE")           # the path itself holds "truncated"
        assert any(w in said for w in ("is empty", "is truncated", "not a safetensors file")), said


def test_corrupt_bytes_are_caught_by_the_checksum(good):
    raw = bytearray(open(good, "rb").read())
    header = 8 + int.from_bytes(raw[:8], "little")
    for where in [header + 5, len(raw) - 3, header + (len(raw) - header) // 2]:
        bad = bytearray(raw)
        bad[where] ^= 0x40
        with open(good, "wb") as f:
            f.write(bad)
        with pytest.raises(CheckpointCorruptError, match="do not match the checksum"):
            ck.load_checkpoint(good)


@pytest.mark.parametrize("was, now", [(b"1234", b"4321"),                  # the run's seed
                                      (b"input.txt", b"input.txy"),        # the run's data path
                                      (b'\\"k\\"]', b'\\"z\\"]')])         # the tokenizer's last character
def test_corrupt_metadata_is_caught_by_the_checksum(tmp_path, was, now):
    # Same length, so the header still parses and only the checksum can tell: a wrong seed
    # or data path would otherwise resume a different run without a word.
    path = ck.save(tmp_path / "m.safetensors", GPT(CFG), tokenizer=CharTokenizer("abcdefghijk"),
                   run={"seed": 1234, "data": "input.txt"})
    assert ck.load_checkpoint(path).run["seed"] == 1234
    meta = ck.read_header(path)[1]
    raw = open(path, "rb").read()
    header = 8 + int.from_bytes(raw[:8], "little")
    assert raw[:header].count(was) == 1 and len(was) == len(now)
    with open(path, "wb") as f:
        f.write(raw[:header].replace(was, now) + raw[header:])
    assert ck.read_header(path)[1] != meta                     # still parses, and the edit took
    with pytest.raises(CheckpointCorruptError, match="do not match the checksum"):
        ck.load_checkpoint(path)


def test_garbage_header_and_trailing_bytes(good, tmp_path):
    raw = open(good, "rb").read()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(raw[:8] + b"{not json" + raw[17:])
    with pytest.raises(CheckpointCorruptError, match="header cannot be parsed"):
        ck.load_checkpoint(junk)
    junk.write_bytes(raw + b"extra")
    with pytest.raises(CheckpointCorruptError, match="5 bytes follow the last tensor"):
        ck.load_checkpoint(junk)
    junk.write_bytes(b"hello, I am a text file and not a checkpoint at all")
    with pytest.raises(CheckpointCorruptError, match="not a safetensors file"):
        ck.load_checkpoint(junk)
    with pytest.raises(CheckpointCorruptError, match="is a folder"):
        ck.load_checkpoint(tmp_path)


def test_safetensors_that_is_not_ours(tmp_path):
    from safetensors.numpy import save_file
    save_file({"wte.weight": np.zeros((3, 2), np.float32)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointCorruptError, match="not a numpy-gpt checkpoint.*GPT.from_gpt2"):
        ck.load_checkpoint(tmp_path / "w.safetensors")


def test_made_for_another_config(good):
    other = GPTConfig(**{**CFG.to_dict(), "n_layer": 3, "n_embd": 16})
    with pytest.raises(CheckpointMismatchError, match=r"made for another model: n_layer=2, n_embd=8, but "
                                                       r"n_layer=3, n_embd=16 was asked for"):
        ck.load_checkpoint(good, config=other)
    with pytest.raises(CheckpointMismatchError):
        tck.load(good, config=other)
    assert ck.load_checkpoint(good, config=CFG).config == CFG


def hand_written(path, params: dict, checksum_of: dict | None = None, checksum: bool = True, **meta) -> str:
    """A checkpoint file of params written directly, its checksum taken over checksum_of
    (default: params; none at all if not checksum) and its metadata as save_checkpoint writes
    it, updated by meta."""
    from safetensors.numpy import save
    meta = {"format": ck.FORMAT, "format_version": ck.FORMAT_VERSION, "config": json.dumps(CFG.to_dict()),
            "step": "0", "run": "{}", "dtype": "float32", **meta}
    if checksum:
        meta["sha256"] = ck._checksum(params if checksum_of is None else checksum_of, meta)
    path.write_bytes(save(params, metadata=meta))
    return str(path)


def test_tensors_that_do_not_fit_their_config(tmp_path):
    """A file whose checksum is fine but whose tensors disagree with its own config (a bug or a hand edit)."""
    model, _ = trained(steps=0)
    params = dict(model.params)
    params["h.0.attn.c_attn.weight"] = np.zeros((8, 8), np.float32)
    hand_written(tmp_path / "x.safetensors", params)
    with pytest.raises(CheckpointCorruptError, match=r"h.0.attn.c_attn.weight has shape \(8, 8\), but its "
                                                      r"config needs \(8, 24\)"):
        ck.load_checkpoint(tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="no training state"):
        ck.restore_trainer(Trainer(model, DATA), ck.load_checkpoint(ck.save(tmp_path / "y.safetensors", model)))


@pytest.mark.parametrize("change", ["dtype", "shape"])
def test_a_tensor_read_as_another_dtype_or_shape_fails_the_checksum(tmp_path, change):
    # The same bytes under another dtype or shape in the header (a flipped bit there) would be
    # garbage weights: the checksum covers each tensor's dtype and shape, not only its bytes.
    params = dict(trained(steps=0)[0].params)
    w = params["h.0.mlp.c_fc.weight"]                                  # (8, 32)
    edited = {**params, "h.0.mlp.c_fc.weight": w.view(np.int32) if change == "dtype" else w.reshape(32, 8)}
    path = hand_written(tmp_path / "e.safetensors", edited, checksum_of=params)
    with pytest.raises(CheckpointCorruptError, match="do not match the checksum"):
        ck.load_checkpoint(path)


def test_training_state_without_its_tensors_is_corrupt(tmp_path):
    # Metadata that says "optimizer" with no history tensors beside it (a hand edit, checksum
    # and all): refused, not read as a checkpoint without training state.
    params = dict(trained(steps=0)[0].params)
    path = hand_written(tmp_path / "s.safetensors", params, step="2", rng="{}", history='{"layer_groups": []}',
                        optimizer=json.dumps({"name": "adamw", "step": 2, "lr": 0.001, "buffers": []}))
    with pytest.raises(CheckpointCorruptError, match="history.step"):
        ck.load_checkpoint(path)
    assert ck.load_checkpoint(path, weights_only=True).step == 2


def test_a_checkpoint_without_its_checksum_is_refused(tmp_path):
    params = dict(trained(steps=0)[0].params)
    with pytest.raises(CheckpointCorruptError, match="do not match the checksum"):
        ck.load_checkpoint(hand_written(tmp_path / "n.safetensors", params, checksum=False))


def test_a_newer_format_version_is_refused_even_with_a_good_checksum(tmp_path):
    params = dict(trained(steps=0)[0].params)
    assert ck.load_checkpoint(hand_written(tmp_path / "v1.safetensors", params)).config == CFG
    with pytest.raises(CheckpointCorruptError, match=f"has format version '2'; this numpy-gpt reads version "
                                                     f"{ck.FORMAT_VERSION}"):
        ck.load_checkpoint(hand_written(tmp_path / "v2.safetensors", params, format_version="2"))


def test_saving_params_that_do_not_fit_the_config_writes_nothing(tmp_path):
    # An untied head saved under a tied config would be dropped without a word; a missing
    # tensor would be a bare KeyError.
    params = dict(trained(steps=0)[0].params)
    extra = {**params, "lm_head.weight": np.zeros((11, 8), np.float32)}
    missing = {k: v for k, v in params.items() if k != "ln_f.bias"}
    for bad, words in [(extra, r"missing \[\], unexpected \['lm_head.weight'\]"),
                       (missing, r"missing \['ln_f.bias'\], unexpected \[\]")]:
        with pytest.raises(CheckpointError, match=words):
            ck.save_checkpoint(tmp_path / "x.safetensors", CFG, bad)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------- reading
def test_loading_reads_the_parameters_into_one_block_the_model_keeps(tmp_path):
    model, trainer = trained(steps=2)
    path = ck.save(tmp_path / "p.safetensors", model, trainer)
    loaded, c = ck.load_model(path)
    assert len({id(v.base) for v in loaded.params.values()}) == 1          # as a new model's (packed_params)
    assert all(loaded.params[k] is c.params[k] for k in loaded.params)     # not copied again
    # Cast on the way in, and the checksum still taken of the bytes the file holds.
    wide, c64 = ck.load_model(path, dtype=np.float64)
    assert all(wide.params[k].dtype == np.float64 and np.array_equal(wide.params[k], v)
               for k, v in model.params.items())
    assert c64.trainer_state["optimizer"]["exp_avg"]["wte.weight"].dtype == np.float32


def test_weights_only_leaves_the_training_state_but_checks_the_whole_file(tmp_path):
    model, trainer = trained(steps=3)
    path = ck.save(tmp_path / "w.safetensors", model, trainer, CharTokenizer("abcdefghijk"))
    c = ck.load_checkpoint(path, weights_only=True)
    assert c.trainer_state is None and c.step == 3 and c.tokenizer == CharTokenizer("abcdefghijk")
    assert all(np.array_equal(c.params[k], v) for k, v in model.params.items())
    with pytest.raises(CheckpointError, match="loaded with weights_only=True: load it again without it"):
        ck.restore_trainer(Trainer(GPT(CFG), DATA), c)
    with pytest.raises(CheckpointError, match="loaded with weights_only=True"):
        tck.restore_trainer(TorchTrainer(torch_gpt.GPT(CFG), DATA, None, trainer.config), c)
    # A flipped bit in a tensor it leaves in the file still fails the checksum.
    table, _ = ck.read_header(path)
    raw = bytearray(open(path, "rb").read())
    begin, end = table["optimizer.exp_avg_sq.h.1.mlp.c_fc.weight"]["data_offsets"]
    raw[8 + int.from_bytes(raw[:8], "little") + (begin + end) // 2] ^= 0x10
    open(path, "wb").write(raw)
    with pytest.raises(CheckpointCorruptError, match="do not match the checksum"):
        ck.load_checkpoint(path, weights_only=True)


def test_loading_holds_one_copy_of_what_it_keeps(tmp_path):
    # safetensors' load_file copied each tensor out of its mapping of the file, and load_model
    # then copied the parameters into one block: four times the parameters for an AdamW run.
    cfg = GPTConfig(**{**CFG.to_dict(), "vocab_size": 50_000})
    model = GPT(cfg, seed=0)
    trainer = Trainer(model, DATA, None, TrainConfig(steps=1, batch_size=2, eval_interval=0))
    trainer.run(progress=False)
    path = ck.save(tmp_path / "m.safetensors", model, trainer)
    P, wte = sum(v.nbytes for v in model.params.values()), model.params["wte.weight"].nbytes
    chunk = ck._HASH_CHUNK                 # the buffer that hashes the tensors left in the file
    for kwargs, need in [({"weights_only": True}, P + chunk), ({}, 3 * P),
                         ({"dtype": np.float64, "weights_only": True}, 2 * P + wte + chunk)]:   # + one tensor's buffer
        _, peak = lowest_traced_peak(lambda: ck.load_model(path, **kwargs) if "weights_only" not in kwargs
                                     else ck.load_checkpoint(path, **kwargs))
        assert need <= peak < need + 100_000, (kwargs, peak, need)


def tensor_file(path, tensors: dict, data_len: int, meta: dict | None = None) -> str:
    """A safetensors file whose header is the given table, followed by data_len bytes."""
    header = {"__metadata__": meta or {"format": ck.FORMAT, "format_version": ck.FORMAT_VERSION}, **tensors}
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(range(256)) * (data_len // 256)
                     + bytes(data_len % 256))
    return str(path)


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("tensors, size, words", [
    ({"a": t("F32", [2], 0, 8), "b": t("F32", [1], 12, 16)}, 16, r"tensor b starts at byte 12 of the data, not at "
                                                                 r"8 where the one before ends \(a gap\)"),
    ({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, 12, r"not at 8 where the one before ends \(they overlap\)"),
    ({"a": t("F32", [3], 0, 8)}, 8, r"tensor a of shape \[3\] needs 12 bytes, but its offsets span 8"),
    ({"a": t("F32", [2], 0, 8), "b": t("F64", [0], 8, 8), "c": t("U8", [3, 0], 8, 8)}, 8, None),   # empty: fine
    ({"a": t("F32", [-2], 0, 8)}, 8, "header is malformed"),
    ({"a": t("F32", [2.0], 0, 8)}, 8, "header is malformed"),
    ({"a": t("F32", [2], 0, 8), "b": "F32"}, 8, "header"),
    ({"a": t("F32", [2], 0, 8), "b": t("F32", [2**63, 0], 8, 8)}, 8, r"shape \[9223372036854775808, 0\] is more than NumPy"),
    ({"a": t("F32", [2], 0, 8), "b": t("F32", [1] * 65 + [0], 8, 8)}, 8, "is more than NumPy can hold"),
    ({"a": t("F32", [2], 0, 1e400)}, 8, "header cannot be parsed"),
])
def test_tensors_that_do_not_tile_the_data_exactly(tmp_path, tensors, size, words):
    # What safetensors refuses to open, refused here too (before any tensor is read).
    from safetensors import safe_open
    path = tensor_file(tmp_path / "x.safetensors", tensors, size)
    if words is None:
        assert set(ck.stored_tensors(path, ck.read_header(path)[0])) == set(tensors)
        with safe_open(path, "np") as f:
            assert f.get_tensor("c").shape == (3, 0)
        return
    with pytest.raises(CheckpointCorruptError, match=words):
        ck.load_checkpoint(path)
    with pytest.raises(Exception):
        with safe_open(path, "np") as f:
            [f.get_tensor(k) for k in f.keys()]


@pytest.mark.parametrize("meta, words", [([1, 2], "__metadata__ is not a map of strings"),
                                         ({"format": ck.FORMAT, "step": 2}, "__metadata__ is not a map of strings")])
def test_metadata_that_is_not_a_map_of_strings(tmp_path, meta, words):
    path = tensor_file(tmp_path / "m.safetensors", {"a": t("F32", [2], 0, 8)}, 8, meta)
    with pytest.raises(CheckpointCorruptError, match=words):
        ck.load_checkpoint(path)


def test_a_header_nested_past_the_parsers_depth(tmp_path):
    text = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    (tmp_path / "n.safetensors").write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(CheckpointCorruptError, match="header cannot be parsed"):
        ck.load_checkpoint(tmp_path / "n.safetensors")


def test_what_the_writer_allows_the_reader_reads(tmp_path):
    # A 0-d tensor (hashed as (1,) since the first checkpoints: _checksum's ascontiguousarray) and
    # parameters saved in mixed dtypes (read, as before, in the first one's) load as they did.
    model, trainer = trained(steps=1)
    state = trainer.state_dict()
    state["optimizer"]["exp_avg"]["scalar"] = np.array(2.5, np.float32)
    mixed = {**model.params, "wpe.weight": model.params["wpe.weight"].astype(np.float64)}
    path = ck.save_checkpoint(tmp_path / "z.safetensors", CFG, mixed, trainer_state=state)
    loaded, c = ck.load_model(path)
    assert c.trainer_state["optimizer"]["exp_avg"]["scalar"].shape == ()
    assert loaded.dtype == np.float32 and all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())


@pytest.mark.parametrize("dtype, words", [("F8_E4M3", "tensor w has dtype F8_E4M3; numpy-gpt reads F16, F32"),
                                          ("F8_E5M2", "BOOL, BF16$")])
def test_dtypes_numpy_cannot_hold_are_named(tmp_path, dtype, words):
    from numpy_gpt.gpt2 import from_gpt2
    path = tensor_file(tmp_path / "x.safetensors", {"w": t(dtype, [2], 0, 4)}, 4)
    with pytest.raises(CheckpointCorruptError, match=words):
        ck.load_checkpoint(path)
    with pytest.raises(CheckpointCorruptError, match="cannot read GPT-2 weights") as e:
        from_gpt2(path)
    assert "malformed" not in str(e.value)


def test_a_file_cut_short_while_it_is_read(tmp_path, monkeypatch):
    # Checked against the header first (truncation); a file that shrinks between that check and
    # the read (another process writing it in place) must not leave half-read weights either.
    model, trainer = trained(steps=1)
    path = ck.save(tmp_path / "c.safetensors", model, trainer)
    real = ck._layout

    def then_cut(p, what):
        out = real(p, what)
        os.truncate(p, os.path.getsize(p) - 100)
        return out
    monkeypatch.setattr(ck, "_layout", then_cut)
    with pytest.raises(CheckpointCorruptError, match="changed while it was read"):
        ck.load_checkpoint(path)


# ------------------------------------------------------------------------------ atomicity
def test_a_failed_save_leaves_the_previous_checkpoint_and_no_temp_file(good, monkeypatch):
    before = open(good, "rb").read()
    model, trainer = trained(steps=7)

    def crash(src, dst):
        raise OSError("disk unplugged")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk unplugged"):
        ck.save(good, model, trainer)
    monkeypatch.undo()
    assert open(good, "rb").read() == before
    assert os.listdir(os.path.dirname(good)) == ["good.safetensors"]


def test_a_save_reaches_the_disk_before_its_name_and_the_name_after_it(good, monkeypatch):
    # A rename can reach the disk before the renamed file's bytes do: after a power cut the name
    # would point at an empty or partial file. So the temp file is flushed and fsync'ed whole
    # before os.replace, and the folder is fsync'ed after it, so that the rename itself lasts.
    model, trainer = trained(steps=7)
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        is_dir = stat.S_ISDIR(st.st_mode)
        events.append(("fsync dir" if is_dir else "fsync file", st.st_ino, None if is_dir else st.st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino, os.path.abspath(dst)))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    small = os.path.join(os.path.dirname(good), "small")
    ck._atomic_write(small, lambda f: f.write(b"12345"))     # less than the file object's buffer
    assert events[0] == ("fsync file", os.stat(small).st_ino, 5)
    events.clear()
    ck.save(good, model, trainer)
    monkeypatch.undo()
    size, ino = os.path.getsize(good), os.stat(good).st_ino
    expected = [("fsync file", ino, size), ("replace", ino, os.path.abspath(good))]
    if hasattr(os, "O_DIRECTORY"):
        expected.append(("fsync dir", os.stat(os.path.dirname(good)).st_ino, None))
    assert events == expected
    loaded, _ = ck.load_model(good)                          # and what was written reads back
    assert all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())


def test_the_temp_file_sweep_spares_live_writers_and_removes_dead_ones(tmp_path):
    # Temp files are named ".<name>.<pid>.<random>.tmp"; another process saving the same path
    # right now owns its file, and deleting it would make that save fail at its rename.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        writing = tmp_path / f".a.safetensors.{live.pid}.k3j2h1.tmp"
        killed = tmp_path / f".a.safetensors.{dead.pid}.q9w8e7.tmp"
        unrelated = tmp_path / f".b.safetensors.{dead.pid}.z5x4c3.tmp"   # another checkpoint's business
        for f in (writing, killed, unrelated):
            f.write_bytes(b"half a checkpoint")
        ck.save(tmp_path / "a.safetensors", GPT(CFG))
        assert writing.read_bytes() == b"half a checkpoint"
        assert not killed.exists()
        assert unrelated.exists()
    finally:
        live.kill()
        live.wait()


def test_a_new_checkpoint_follows_the_umask_and_an_overwrite_keeps_the_files_mode(tmp_path):
    # The temp file is made 0600 by mkstemp; without fixing that, checkpoints would stop
    # being readable by the group (or whoever the user chose) after every save.
    path = tmp_path / "m.safetensors"
    old = os.umask(0o027)
    try:
        ck.save(path, GPT(CFG))
        assert oct(stat.S_IMODE(os.stat(path).st_mode)) == oct(0o640)  # 0666 less the umask
        os.chmod(path, 0o644)                                    # neither the umask's 0640 nor mkstemp's 0600
        ck.save(path, GPT(CFG))
        assert oct(stat.S_IMODE(os.stat(path).st_mode)) == oct(0o644)
    finally:
        os.umask(old)


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from numpy_gpt import GPTConfig
    from numpy_gpt.checkpoint import save_checkpoint
    from numpy_gpt.model import param_shapes
    cfg = GPTConfig(vocab_size=512, block_size=64, n_layer=4, n_head=4, n_embd=128, pos_encoding="learned")
    v = int(sys.argv[2])
    while True:
        params = {k: np.full(s, v, np.float32) for k, s in param_shapes(cfg).items()}
        save_checkpoint(sys.argv[1], cfg, params, run={"version": v})
        print(v, flush=True)
        v += 1
""")


def test_killed_while_saving_the_checkpoint_on_disk_is_always_a_whole_version(tmp_path):
    path = str(tmp_path / "ckpt.safetensors")
    rnd = random.Random(0)
    version, kills, seen = 0, 0, []
    while kills < 5:
        child = subprocess.Popen([sys.executable, "-c", SAVER, path, str(version)], stdout=subprocess.PIPE,
                                 text=True, env=ENV)
        first = child.stdout.readline()               # one complete save, so there is a file to protect
        assert first.strip() == str(version), first
        time.sleep(rnd.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait()
        done = [int(line) for line in [first, *child.stdout.read().split()] if line.strip()]
        child.stdout.close()
        c = ck.load_checkpoint(path)                  # always loads ...
        v = c.run["version"]
        assert all((p == v).all() for p in c.params.values()), "a checkpoint mixes two versions"
        assert v in (done[-1], done[-1] + 1)          # ... the last complete save, or the one being renamed
        seen.append(v)
        version = v + 1
        kills += 1
    assert os.path.exists(path) and seen == sorted(seen)
    model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=4, n_head=4, n_embd=128, pos_encoding="learned"))
    ck.save(path, model)                               # the next save sweeps the killed saves' temp files
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


# ---------------------------------------------------------------------------------- resume
TRAIN = [sys.executable, "-m", "numpy_gpt", "train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
         "--block-size", "16", "--batch-size", "4", "--eval-interval", "25", "--eval-batches", "2",
         "--no-progress", "--no-plot", "--seed", "5"]


def _same_run(a: str, b: str):
    ca, cb = ck.load_checkpoint(a), ck.load_checkpoint(b)
    assert ca.step == cb.step
    for k, v in ca.params.items():
        assert np.array_equal(v, cb.params[k]), f"{k} differs"
    ha, hb = ca.trainer_state["history"], cb.trainer_state["history"]
    assert ha["loss"] == hb["loss"] and ha["eval"] == hb["eval"] and ha["grad_norm"] == hb["grad_norm"]
    for buf in ("exp_avg", "exp_avg_sq"):
        for k, v in ca.trainer_state["optimizer"][buf].items():
            assert np.array_equal(v, cb.trainer_state["optimizer"][buf][k])
    assert ca.trainer_state["rng"] == cb.trainer_state["rng"]


STEPS = "150"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run, started in the background; the tests wait for it when they need it."""
    d = tmp_path_factory.mktemp("straight")
    path = str(d / "straight.safetensors")
    proc = subprocess.Popen([*TRAIN, "--steps", STEPS, "--out", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=d)
    yield proc, path
    proc.kill()
    proc.wait()
    proc.stderr.close()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_and_resuming_is_bit_identical(tmp_path, straight, sig, code):
    stopped = str(tmp_path / "stopped.safetensors")
    child = subprocess.Popen([*TRAIN, "--steps", STEPS, "--out", stopped, "--save-interval", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    t0 = time.time()
    while not os.path.exists(stopped) and child.poll() is None and time.time() - t0 < 60:
        time.sleep(0.002)
    child.send_signal(sig)
    out, err = child.communicate(timeout=60)
    assert child.returncode == code, err
    at = ck.load_checkpoint(stopped).step
    assert 0 < at < int(STEPS) and f"stopped by {signal.Signals(sig).name} at step {at}" in err
    assert f"resume with: numpy-gpt train --resume {stopped}" in err
    resumed = subprocess.run([*TRAIN, "--resume", stopped], capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {at}" in resumed.stdout
    proc, path = straight
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    _same_run(stopped, path)


# ---------------------------------------------------------------------- numpy <-> torch
def test_torch_gpt_takes_the_arrays_it_read_as_its_parameters(tmp_path):
    # No random initialization and no copy: torch_gpt.model.adopt shares numpy_gpt's block.
    model, trainer = trained(steps=2)
    path = ck.save(tmp_path / "t.safetensors", model, trainer)
    t, c = tck.load(path)
    assert all(np.shares_memory(p.detach().numpy(), c.params[k]) and p.requires_grad and p.dtype == torch.float32
               and np.array_equal(c.params[k], model.params[k]) for k, p in t.named_parameters())
    assert {k for k, _ in t.named_parameters()} == set(model.params) and list(t.buffers()) == []
    t64, _ = tck.load(path, dtype=torch.float64)
    assert all(p.dtype == torch.float64 and np.array_equal(p.detach().numpy(), model.params[k])
               for k, p in t64.named_parameters())
    half = ck.save_checkpoint(tmp_path / "h.safetensors", CFG, {k: v.astype(np.float16) for k, v in model.params.items()})
    assert all(p.dtype == torch.float32 for p in tck.load(half)[0].parameters())     # as before: float16 runs in float32
    for dtype in (torch.float16, torch.bfloat16):                                    # asked for: cast, as before
        assert all(p.dtype == dtype for p in tck.load(path, dtype=dtype)[0].parameters())
        from numpy_gpt.gpt2 import save_gpt2
        g = save_gpt2(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)),
                      tmp_path / "gpt2" / "model.safetensors")
        assert all(p.dtype == dtype for p in torch_gpt.gpt2.from_gpt2(g, dtype=dtype).parameters())
    # It trains as a model built the usual way does, step for step.
    fresh = torch_gpt.GPT(CFG)
    fresh.load_state_dict(torch_gpt.model.from_numpy(model.params))
    for m in (t, fresh):
        tt = TorchTrainer(m, DATA, None, TrainConfig(steps=2, batch_size=2, eval_interval=0, seed=5))
        tt.run(progress=False)
    assert all(torch.equal(p, q) for p, q in zip(t.parameters(), fresh.parameters()))


def test_train_in_numpy_continue_in_torch_and_back(tmp_path):
    tcfg = TrainConfig(steps=18, batch_size=2, eval_interval=6, eval_batches=2, lr=1e-2, warmup_steps=4)
    straight = GPT(CFG, seed=1, dtype=np.float64)
    h = Trainer(straight, DATA, DATA[:100], tcfg).run(progress=False)

    model = GPT(CFG, seed=1, dtype=np.float64)
    trainer = Trainer(model, DATA, DATA[:100], tcfg)
    trainer.run(steps=6, progress=False)
    path = ck.save(tmp_path / "a.safetensors", model, trainer)

    tmodel, c = tck.load(path)
    assert next(tmodel.parameters()).dtype == torch.float64
    ttrainer = TorchTrainer(tmodel, DATA, DATA[:100], c.train_config)
    tck.restore_trainer(ttrainer, c)
    ttrainer.run(steps=12, progress=False)
    tck.save(path, tmodel, ttrainer)

    back, c = ck.load_model(path)
    assert c.run["backend"] == "torch" and c.step == 12
    trainer = Trainer(back, DATA, DATA[:100], c.train_config)
    ck.restore_trainer(trainer, c)
    h2 = trainer.run(progress=False)
    assert len(h2.loss) == 18 and h2.loss[:6] == h.loss[:6]
    assert_close("resume[np->torch->np]", "losses", np.array(h2.loss), np.array(h.loss), 1e-9)
    assert_close("resume[np->torch->np]", "lr", np.array(h2.lr), np.array(h.lr), 1e-12)
    assert [e["val_loss"] for e in h2.eval] == pytest.approx([e["val_loss"] for e in h.eval], rel=1e-9)
    for k, v in straight.params.items():
        assert_close("resume[np->torch->np]", "params", back.params[k], v, 1e-9)


@pytest.mark.parametrize("optimizer, dropout", [("adamw", 0.0), ("sgd", 0.0), ("adamw", 0.2)])
def test_torch_trainer_state_dict_resumes_itself_exactly(optimizer, dropout):
    cfg = GPTConfig(**{**CFG.to_dict(), "dropout": dropout})
    tcfg = TrainConfig(steps=10, batch_size=2, eval_interval=0, optimizer=optimizer, warmup_steps=3)
    init = GPT(cfg, seed=2).params

    def fresh():
        t = torch_gpt.GPT(cfg)
        t.load_state_dict(torch_gpt.from_numpy(init))
        return t
    with torch.random.fork_rng():                 # torch's global RNG draws the dropout masks
        torch.manual_seed(0)
        straight = fresh()
        h = TorchTrainer(straight, DATA, None, tcfg).run(progress=False)
        torch.manual_seed(0)
        first = fresh()
        t1 = TorchTrainer(first, DATA, None, tcfg)
        t1.run(steps=4, progress=False)
        state = t1.state_dict()
        assert set(state["optimizer"]) >= {"step", "lr"} and state["step"] == 4
        torch.manual_seed(12345)                  # elsewhere, as in a new process: the state must restore it
        second = fresh()
        second.load_state_dict(first.state_dict())
        t2 = TorchTrainer(second, DATA, None, tcfg)
        t2.load_state_dict(state)
        assert t2.optimizer.param_groups[0]["lr"] == pytest.approx(t1.optimizer.param_groups[0]["lr"], rel=1e-15)
        h2 = t2.run(progress=False)
    assert h2.loss == h.loss
    assert all(torch.equal(p, q) for p, q in zip(second.parameters(), straight.parameters()))


def test_check_writable_creates_nothing_and_names_what_is_wrong(tmp_path):
    from numpy_gpt.checkpoint import check_writable
    check_writable(str(tmp_path / "a" / "b" / "model.safetensors"))   # folders made at save time
    assert os.listdir(tmp_path) == []                                  # nor is the probe file left
    (tmp_path / "a").mkdir()
    with pytest.raises(CheckpointError, match="it is a folder"):
        check_writable(str(tmp_path / "a"))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(CheckpointError, match=r"f\.txt is a file, not a folder"):
        check_writable(str(tmp_path / "f.txt" / "deeper" / "m.safetensors"))
