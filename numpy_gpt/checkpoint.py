"""Checkpoints: one safetensors file holding a whole training run.

    save(path, model, trainer, tokenizer)           # numpy_gpt; torch_gpt.checkpoint.save is its twin
    model, ckpt = load_model(path)                  # ckpt.trainer_state resumes a Trainer
    ckpt = load_checkpoint(path, config=None)       # just the data, no model
    ckpt = load_checkpoint(path, weights_only=True) # the parameters only (to generate)

Tensors (safetensors, little-endian, each under its own name):
    {param}                           every parameter, named as model.params ("wte.weight", "h.0.attn.c_attn.weight", ...)
    optimizer.{buffer}.{param}        optimizer state in numpy_gpt.optim's layout (exp_avg, exp_avg_sq, momentum_buffer)
    history.step / loss / lr / grad_norm          one entry per step taken (int64, float64)
    history.layer_grad_norms          (steps, groups) float64; the group names are in the "history" metadata
    rng.torch                         torch's global RNG state (uint8), only when torch_gpt wrote the file
Metadata (strings; JSON where structured):
    format "numpy-gpt checkpoint", format_version "1", step, dtype, config (GPTConfig),
    train_config (TrainConfig), tokenizer (its to_dict()), optimizer ({name, step, lr, buffers}),
    rng and model_rng (NumPy bit-generator states: batches and dropout), history (evaluations,
    tokens/s, group names), run (data path, backend, seed, ...), and sha256, a checksum of
    every tensor and every other metadata entry.

So a torch user opens it with `safetensors.torch.load_file(path)` (the parameters are the keys
without a dot-prefix of optimizer./history./rng.), and both implementations resume from it.
The file is written here (safetensors_writer: each array's bytes straight to the file, so a
save needs no second copy of the model and its optimizer state in memory) and read here
(read_tensors: each tensor's bytes straight from the file into the array that keeps it, the
parameters into one block; the layout checked first as the safetensors package checks it).
Neither needs the package; its files and ours are the same format, tested both ways.

Writes are atomic: the bytes go to a temporary file in the same folder, which is fsync'ed and
then renamed over the target (and the folder fsync'ed), so a process killed while saving leaves
the previous checkpoint whole. A killed save leaves its ".<name>.<pid>.*.tmp" file behind; it is
never read, and the next save of the same path deletes it once that pid is gone. Loading checks,
in order: the file exists, the header is well formed and the file is as long as the header says
(truncation), the metadata says numpy-gpt, the tensors' byte ranges tile the data, the checksum
matches (corruption), and the tensors fit the config; each failure is a CheckpointError naming
the file and the problem.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import GPTConfig
from .errors import (CheckpointCorruptError, CheckpointError, CheckpointMismatchError,
                     CheckpointNotFoundError, ConfigError, NumpyGPTError)
from .model import GPT, packed_empty, param_shapes

FORMAT = "numpy-gpt checkpoint"
FORMAT_VERSION = "1"
ADAM_BUFFERS = ("exp_avg", "exp_avg_sq")
BUFFERS = {"sgd": ("momentum_buffer",), "adam": ADAM_BUFFERS, "adamw": ADAM_BUFFERS}
_HISTORY_SERIES = (("step", np.int64), ("loss", np.float64), ("lr", np.float64), ("grad_norm", np.float64))
_MAX_HEADER = 100_000_000               # safetensors' own limit on the header (MAX_HEADER_SIZE)
_STATE_PREFIXES = ("optimizer.", "history.", "rng.")     # tensors that are not parameters
_MAX_NDIM = 64                          # NumPy's limit on an array's dimensions


@dataclass
class Checkpoint:
    """What a checkpoint file holds, as plain data."""
    path: str
    config: GPTConfig
    params: dict[str, np.ndarray]
    trainer_state: dict | None = None    # as Trainer.state_dict(): step, optimizer, rng, model_rng, history
    train_config: Any = None             # numpy_gpt.train.TrainConfig
    tokenizer: Any = None                # numpy_gpt.tokenizers.Tokenizer
    run: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        if self.trainer_state:
            return int(self.trainer_state["step"])
        return int(self.metadata.get("step", 0))          # also when loaded with weights_only


# ---------------------------------------------------------------------------------- saving
def save_checkpoint(path: str | os.PathLike, config: GPTConfig, params: dict[str, np.ndarray], *,
                    trainer_state: dict | None = None, train_config=None, tokenizer=None,
                    run: dict | None = None) -> str:
    """Write one checkpoint file atomically; returns its path.

    params: numpy arrays by name (model.params, or torch_gpt.to_numpy(state_dict)).
    trainer_state: Trainer.state_dict() of either implementation (optimizer state in numpy_gpt's layout).
    """
    path = os.fspath(path)
    expected = param_shapes(config)
    if set(params) != set(expected):
        raise CheckpointError(f"params do not fit the config: missing {sorted(set(expected) - set(params))}, "
                              f"unexpected {sorted(set(params) - set(expected))}", path)
    tensors: dict[str, np.ndarray] = {k: np.asarray(params[k]) for k in expected}   # made C-order below
    dtype = np.dtype(next(iter(tensors.values())).dtype)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtype.name,
            "config": json.dumps(config.to_dict()), "step": "0", "run": json.dumps(run or {})}
    if train_config is not None:
        meta["train_config"] = json.dumps(train_config.to_dict())
    if tokenizer is not None:
        meta["tokenizer"] = json.dumps(tokenizer.to_dict())
    if trainer_state is not None:
        _put_trainer_state(tensors, meta, trainer_state, train_config)
    tensors = {k: _as_stored(a) for k, a in tensors.items()}     # the checksum covers what the file holds
    meta["sha256"] = _checksum(tensors, meta)
    _atomic_write(path, safetensors_writer(tensors, meta))
    return path


def _as_stored(a) -> np.ndarray:
    """a as a safetensors file holds it: C order, little-endian; copied only where it is not so
    already (and a 0-d array stays 0-d, which np.ascontiguousarray would make 1-d)."""
    a = np.asarray(a)
    return np.array(a, dtype=a.dtype.newbyteorder("<"), order="C", copy=None)


# safetensors' names for the dtypes a checkpoint can hold
_SAFETENSORS_DTYPES = {"f2": "F16", "f4": "F32", "f8": "F64", "i1": "I8", "i2": "I16", "i4": "I32",
                       "i8": "I64", "u1": "U8", "u2": "U16", "u4": "U32", "u8": "U64", "b1": "BOOL"}


def safetensors_writer(tensors: dict[str, np.ndarray], meta: dict[str, str]):
    """A function of an open binary file that writes tensors and meta to it as a safetensors file.

    The format: an 8-byte little-endian length N; N bytes of JSON, {"__metadata__": {str: str},
    name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}, padded with
    spaces (here to a multiple of 8, so that the data starts aligned, as safetensors' own files
    do); then the tensors' bytes back to back, each at its offsets. As in safetensors' own files,
    wider dtypes come first (then names in order), so that each tensor starts at a multiple of its
    item size and a reader can view it in place. What safetensors could not read back (a name or
    a metadata value that is not a string, a tensor called __metadata__, a header over its 100 MB)
    raises TypeError or ValueError here, before a file is touched.

    Each array's bytes go to the file from the array's own memory. safetensors.numpy.save would
    first build the whole file as one bytes object, from a copy of every tensor: saving a
    checkpoint after 3 training steps of the medium config took the process's peak from 482-490
    to 968-975 MB above its imports and 1.4 s; written here, the peak stays the training step's
    and the save takes 0.7 s (2 threads, Zen 3 host, 2026-12-05; `python -m
    benchmarks.trainer_memory --save`, at this change and before it).
    """
    bad = ([(k, v) for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))]
           + [(k, "a tensor") for k in tensors if not isinstance(k, str) or k == "__metadata__"])
    if bad:                                         # safetensors would write them, then fail to read them
        raise TypeError(f"safetensors names and metadata must be strings (and no tensor may be called "
                        f"__metadata__), got {bad[0][0]!r}: {bad[0][1]!r}")
    arrays = {k: _as_stored(a) for k, a in tensors.items()}
    arrays = {k: arrays[k] for k in sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))}
    header, offset = {"__metadata__": meta}, 0
    for name, a in arrays.items():
        if a.dtype.str[1:] not in _SAFETENSORS_DTYPES:
            raise TypeError(f"safetensors has no dtype for {name!r}: {a.dtype}")
        header[name] = {"dtype": _SAFETENSORS_DTYPES[a.dtype.str[1:]], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    if len(text) > _MAX_HEADER:                     # checked before anything is written
        raise ValueError(f"the safetensors header would take {len(text)} bytes, more than the "
                         f"{_MAX_HEADER} that safetensors reads")

    def write(f) -> None:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in arrays.values():
            if a.size:
                f.write(memoryview(a).cast("B"))
    return write


def _put_trainer_state(tensors, meta, state, train_config):
    meta["step"] = str(int(state["step"]))
    opt = state["optimizer"]
    name = train_config.optimizer if train_config is not None else None
    buffers = [b for b in opt if b not in ("step", "lr")]
    meta["optimizer"] = json.dumps({"name": name, "step": int(opt["step"]), "lr": float(opt["lr"]),
                                    "buffers": buffers})
    for buf in buffers:
        for pname, a in opt[buf].items():
            tensors[f"optimizer.{buf}.{pname}"] = np.asarray(a)
    meta["rng"] = json.dumps(state["rng"])
    if state.get("model_rng") is not None:
        meta["model_rng"] = json.dumps(state["model_rng"])
    if state.get("torch_rng") is not None:
        tensors["rng.torch"] = np.asarray(state["torch_rng"], dtype=np.uint8)
    h = dict(state["history"])
    for key, dt in _HISTORY_SERIES:
        tensors[f"history.{key}"] = np.asarray(h.pop(key), dtype=dt).reshape(-1)
    rows = h.pop("layer_grad_norms")
    groups = list(rows[0]) if rows else []
    tensors["history.layer_grad_norms"] = np.array([[r[g] for g in groups] for r in rows],
                                                   dtype=np.float64).reshape(len(rows), len(groups))
    h["layer_groups"] = groups
    meta["history"] = json.dumps(h)


def _hash_meta(sha, meta: dict[str, str]) -> None:
    for k in sorted(meta):
        if k != "sha256":
            sha.update(f"{k}={meta[k]}\0".encode())


def _checksum(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> str:
    """The sha256 a checkpoint carries: of every metadata entry but itself, then of every tensor's
    name, dtype, shape and bytes, in name order (read_tensors takes the same while it reads)."""
    sha = hashlib.sha256()
    _hash_meta(sha, meta)
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        sha.update(f"{k}:{a.dtype.str}:{a.shape}\0".encode())
        sha.update(memoryview(a).cast("B") if a.size else b"")              # the array's own bytes, no copy
    return sha.hexdigest()


def check_writable(path: str) -> None:
    """A CheckpointError now, before a long run, if a checkpoint could not be written at path
    later: a file where a folder should be, no permission. Creates nothing that stays: the
    nearest existing folder on the way gets a probe file, removed at once; missing folders are
    made when the checkpoint is saved."""
    if os.path.isdir(path):
        raise CheckpointError(f"cannot write {path}: it is a folder", path)
    folder = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(folder):
        raise CheckpointError(f"cannot write {path}: {folder} is a file, not a folder", path)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".numpy_gpt.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror} ({folder})", path) from None


def _nearest_existing(folder: str) -> str:
    """folder, or its nearest ancestor that exists."""
    while not os.path.exists(folder) and folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
    return folder


def _make_folder(path: str, folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        parent = _nearest_existing(folder)
        why = f"{parent} is a file, not a folder" if os.path.exists(parent) and not os.path.isdir(parent) \
            else e.strerror
        raise CheckpointError(f"cannot write {path}: {why}", path) from None


def _atomic_write(path: str, write) -> None:
    """Write a file at path with write(f), f the new file opened "wb", so that a crash at any
    moment leaves either the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    _make_folder(path, folder)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())                   # the bytes are on disk before the name points at them
        os.chmod(tmp, mode)
        os.replace(tmp, path)                      # atomic on POSIX and Windows
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):                 # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    _remove_stale_temps(path)


def _remove_stale_temps(path: str) -> None:
    """Delete the temporary files that killed saves of this same path left behind: those whose
    writer (the pid in the name) is gone. A live writer's file is left alone."""
    folder, base = os.path.split(os.path.abspath(path))
    for name in os.listdir(folder):
        if not (name.startswith(f".{base}.") and name.endswith(".tmp")):
            continue
        pid = name[len(base) + 2:].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except OSError:                            # alive, someone else's
            pass


# --------------------------------------------------------------------------------- loading
def read_header(path: str | os.PathLike, what: str = "checkpoint") -> tuple[dict, dict]:
    """(tensor table, metadata) of a safetensors file, checking its length against the header.

    Raises CheckpointNotFoundError or CheckpointCorruptError (truncated, not safetensors), whose
    messages call the file `what` ("checkpoint", or "GPT-2 weights" for gpt2.read_state_dict).
    """
    return _layout(path, what)[:2]


def _layout(path: str | os.PathLike, what: str) -> tuple[dict, dict, int]:
    """read_header's (tensor table, metadata), and where the tensors' bytes start in the file."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            raw = f.read(n) if n is not None and 0 < n <= min(size - 8, _MAX_HEADER) else None
    except FileNotFoundError:
        raise CheckpointNotFoundError(path, what) from None
    except IsADirectoryError:
        raise CheckpointCorruptError(f"{what} {path} is a folder, not a file", path) from None
    except PermissionError as e:
        raise CheckpointError(f"{what} {path} cannot be read: {e.strerror}", path) from None
    if size == 0:
        raise CheckpointCorruptError(f"{what} {path} is empty (0 bytes)", path)
    if n is None or raw is None:
        why = (f"it is truncated ({size} bytes, shorter than its own header of {n} bytes)"
               if n is not None and 8 + n > size and n <= _MAX_HEADER else "it is not a safetensors file")
        raise CheckpointCorruptError(f"{what} {path} is unreadable: {why}", path)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        if not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
            raise ValueError("__metadata__ is not a map of strings")
        end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, OverflowError, RecursionError) as e:
        raise CheckpointCorruptError(f"{what} {path} is corrupt: its header cannot be parsed ({e})",
                                     path) from None
    if 8 + n + end > size:
        raise CheckpointCorruptError(f"{what} {path} is truncated: {size} bytes, but its header "
                                     f"describes {8 + n + end}", path)
    if 8 + n + end < size:
        raise CheckpointCorruptError(f"{what} {path} is corrupt: {size - 8 - n - end} bytes follow "
                                     "the last tensor", path)
    return header, meta, 8 + n


@dataclass(frozen=True)
class StoredTensor:
    """Where one tensor lies in a safetensors file: bytes begin:end after the header."""
    dtype: np.dtype                      # as stored: little-endian (uint16 for bfloat16)
    shape: tuple[int, ...]
    begin: int
    end: int
    bfloat16: bool = False               # read as float32 (or wider): _from_bfloat16


# safetensors' dtype names -> the NumPy dtypes they store (little-endian). NumPy has no bfloat16:
# its 16 bits are read as uint16 and widened to float32 (_from_bfloat16).
_NUMPY_DTYPES = {**{v: np.dtype("<" + k) for k, v in _SAFETENSORS_DTYPES.items()}, "BF16": np.dtype("<u2")}


def stored_tensors(path: str, table: dict, what: str = "checkpoint") -> dict[str, StoredTensor]:
    """The tensors a header describes, checked as the safetensors package checks them: dtypes
    it knows, byte ranges as long as their shapes need, and ranges that cover the data exactly,
    back to back, none overlapping. Anything else is a CheckpointCorruptError."""
    out = {}
    try:
        for name, t in table.items():
            if t["dtype"] not in _NUMPY_DTYPES:
                raise CheckpointCorruptError(f"cannot read {what} {path}: tensor {name} has dtype "
                                             f"{t['dtype']}; numpy-gpt reads {', '.join(_NUMPY_DTYPES)}", path)
            shape, (begin, end) = tuple(t["shape"]), t["data_offsets"]
            if not all(type(d) is int and d >= 0 for d in (*shape, begin, end)):
                raise ValueError(f"tensor {name}: shape {list(shape)} and offsets {[begin, end]} must be "
                                 "whole numbers >= 0")
            if len(shape) > _MAX_NDIM or math.prod(d for d in shape if d) > np.iinfo(np.intp).max:
                raise ValueError(f"tensor {name}: shape {list(shape)} is more than NumPy can hold")
            out[name] = StoredTensor(_NUMPY_DTYPES[t["dtype"]], shape, begin, end, t["dtype"] == "BF16")
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointCorruptError(f"{what} {path} is corrupt: its header is malformed ({e})", path) from None
    at = 0
    for name, t in sorted(out.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        need = math.prod(t.shape) * t.dtype.itemsize          # Python ints: no overflow
        if t.end - t.begin != need:
            raise CheckpointCorruptError(f"{what} {path} is corrupt: tensor {name} of shape {list(t.shape)} "
                                         f"needs {need} bytes, but its offsets span {t.end - t.begin}", path)
        if t.begin != at:
            raise CheckpointCorruptError(f"{what} {path} is corrupt: tensor {name} starts at byte "
                                         f"{t.begin} of the data, not at {at} where the one before ends "
                                         f"({'a gap' if t.begin > at else 'they overlap'})", path)
        at = t.end
    return out


def read_tensors(path: str, start: int, stored: dict[str, StoredTensor], into: dict[str, np.ndarray],
                 sha=None, what: str = "checkpoint") -> None:
    """Read the tensors named in `into` from the file straight into those arrays (C-contiguous,
    of the stored shape, any dtype: a tensor stored in another dtype or byte order goes through a
    buffer of its own size and is cast). The others are not kept. With sha (a hashlib object),
    every tensor's name, dtype, shape and bytes are fed to it in name order, as _checksum does.

    Nothing is mapped or read twice: the process holds the arrays it keeps and one tensor's
    buffer at most. safetensors.numpy.load_file maps the file and copies each tensor out of the
    mapping, which then had to be copied again into the model's one block (packed_params).
    """
    chunk = memoryview(bytearray(_HASH_CHUNK)) if sha is not None and set(stored) - set(into) else None
    with open(path, "rb", buffering=0) as f:
        for name in sorted(stored) if sha is not None else sorted(into, key=lambda k: stored[k].begin):
            t = stored[name]
            if sha is not None:                    # _checksum's np.ascontiguousarray made a 0-d array (1,)
                sha.update(f"{name}:{t.dtype.str}:{t.shape or (1,)}\0".encode())
            f.seek(start + t.begin)
            dest = into.get(name)
            if dest is None:                       # not kept: only hashed, a chunk at a time
                for lo in range(t.begin, t.end, _HASH_CHUNK):
                    sha.update(_read_exactly(f, chunk[:min(_HASH_CHUNK, t.end - lo)], path, what))
                continue
            direct = dest.dtype == t.dtype and dest.flags.c_contiguous and not t.bfloat16
            buf = dest if direct else np.empty(t.shape, t.dtype)
            raw = _read_exactly(f, memoryview(buf.reshape(-1).view(np.uint8)), path, what)
            if sha is not None:
                sha.update(raw)
            if t.bfloat16:
                _from_bfloat16(buf, dest)
            elif not direct:
                dest[...] = buf


def _from_bfloat16(bits: np.ndarray, dest: np.ndarray) -> None:
    """dest[...] = the bfloat16 numbers whose bits are `bits` (uint16). A bfloat16 is the upper
    half of the float32 of the same value, so each widens exactly: bits << 16, read as float32.
    64K values at a time, so that no float32 copy of the whole tensor is made first."""
    n = 1 << 16
    src, out = bits.reshape(-1), dest.reshape(-1)
    if not np.shares_memory(out, dest):                 # dest is not C-contiguous: all at once
        dest[...] = (bits.astype(np.uint32) << 16).view(np.float32)
        return
    wide = np.empty(min(n, src.size), np.uint32)
    for lo in range(0, src.size, n):
        w = wide[:min(n, src.size - lo)]
        w[...] = src[lo:lo + n]
        w <<= 16
        out[lo:lo + n] = w.view(np.float32)


def _saved_dtype(meta: dict, stored: dict[str, StoredTensor], state: list[str]) -> np.dtype:
    """The parameters' dtype: the metadata's (save_checkpoint writes the first parameter's), or,
    if it names none that NumPy knows, the first parameter's in the file. Parameters saved in
    mixed dtypes are all read in this one, as a model computes in one."""
    try:
        return np.dtype(meta["dtype"])
    except (KeyError, TypeError):
        return next((np.dtype(np.float32) if t.bfloat16 else t.dtype for k, t in stored.items() if k not in state),
                    np.dtype(np.float32))


_HASH_CHUNK = 1 << 18                   # bytes: read_tensors hashes the tensors it does not keep in these


def _read_exactly(f, into: memoryview, path: str, what: str) -> memoryview:
    got = 0
    while got < len(into):                         # a raw read may return fewer bytes than asked
        n = f.readinto(into[got:])
        if not n:
            raise CheckpointCorruptError(f"{what} {path} changed while it was read: it ended early", path)
        got += n
    return into


def load_checkpoint(path: str | os.PathLike, config: GPTConfig | None = None, *, dtype=None,
                    weights_only: bool = False) -> Checkpoint:
    """Read a checkpoint. config, if given, must equal the checkpoint's (CheckpointMismatchError).

    The parameters are read straight into one block of memory (model.packed_empty), in dtype if
    given (else as saved: the first parameter's dtype), ready to be a GPT's params without another copy. weights_only: leave
    the training state (optimizer buffers, history, RNG states) in the file, for generating; the
    checksum still covers the whole file.
    """
    path = os.fspath(path)
    table, meta, start = _layout(path, "checkpoint")
    if meta.get("format") != FORMAT:
        hint = (" (it looks like GPT-2 weights: load them with GPT.from_gpt2, or `--gpt2` on the command line)"
                if any(k.endswith("wte.weight") for k in table) else "")
        raise CheckpointCorruptError(f"{path} is a safetensors file but not a numpy-gpt checkpoint "
                                     f"(no 'format: {FORMAT}' metadata){hint}", path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointCorruptError(f"checkpoint {path} has format version {meta.get('format_version')!r}; "
                                     f"this numpy-gpt reads version {FORMAT_VERSION}", path)
    stored = stored_tensors(path, table)
    state = [k for k in stored if k.startswith(_STATE_PREFIXES)]
    dtype = np.dtype(dtype if dtype is not None else _saved_dtype(meta, stored, state)).newbyteorder("=")
    tensors = packed_empty({k: (t.shape, dtype) for k, t in stored.items() if k not in state})
    if not weights_only:
        tensors.update({k: np.empty(stored[k].shape, stored[k].dtype.newbyteorder("=")) for k in state})
    sha = hashlib.sha256()
    _hash_meta(sha, meta)
    try:
        read_tensors(path, start, stored, tensors, sha)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e.strerror or e}", path) from None
    if sha.hexdigest() != meta.get("sha256"):
        raise CheckpointCorruptError(f"checkpoint {path} is corrupt: its contents do not match the "
                                     "checksum written with them", path)
    try:
        return _decode(path, tensors, meta, config, weights_only)
    except CheckpointError:
        raise
    except (NumpyGPTError, ValueError, KeyError, TypeError) as e:
        raise CheckpointCorruptError(f"checkpoint {path} is corrupt: {type(e).__name__}: {e}", path) from None


def _decode(path, tensors, meta, expect: GPTConfig | None, weights_only: bool) -> Checkpoint:
    from .tokenizers import tokenizer_from_dict
    from .train import TrainConfig
    try:
        cfg = GPTConfig.from_dict(json.loads(meta["config"]))
    except ConfigError as e:
        raise CheckpointCorruptError(f"checkpoint {path} holds an invalid config: {e}", path) from None
    if expect is not None and expect != cfg:
        a, b = cfg.to_dict(), expect.to_dict()
        diff = [k for k in a if a[k] != b[k]]
        raise CheckpointMismatchError(
            f"checkpoint {path} was made for another model: "
            f"{', '.join(f'{k}={a[k]!r}' for k in diff)}, but {', '.join(f'{k}={b[k]!r}' for k in diff)} "
            "was asked for", path)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name not in tensors:
            raise CheckpointCorruptError(f"checkpoint {path} lacks parameter {name}, which its config needs", path)
        if tensors[name].shape != shape:
            raise CheckpointCorruptError(f"checkpoint {path}: {name} has shape {tensors[name].shape}, but its "
                                         f"config needs {shape}", path)
        params[name] = tensors[name]
    tcfg = None
    if "train_config" in meta:
        d = json.loads(meta["train_config"])
        d["betas"] = tuple(d.get("betas", (0.9, 0.95)))
        tcfg = TrainConfig(**d)
    tok = tokenizer_from_dict(json.loads(meta["tokenizer"])) if "tokenizer" in meta else None
    state = _trainer_state(tensors, meta, params) if "optimizer" in meta and not weights_only else None
    return Checkpoint(path, cfg, params, state, tcfg, tok, json.loads(meta.get("run", "{}")), dict(meta))


def _trainer_state(tensors, meta, params) -> dict:
    opt_meta = json.loads(meta["optimizer"])
    opt: dict[str, Any] = {"step": int(opt_meta["step"]), "lr": float(opt_meta["lr"])}
    buffers = list(opt_meta.get("buffers", []))
    # Adam's moments are zero before the first step; torch keeps no state at all then.
    # SGD's momentum buffers are created at its first step (and never without momentum).
    for buf in BUFFERS.get(opt_meta.get("name"), ()):
        if buf not in buffers:
            opt[buf] = {} if buf == "momentum_buffer" else {k: np.zeros_like(p) for k, p in params.items()}
    for buf in buffers:
        prefix = f"optimizer.{buf}."
        opt[buf] = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    h = json.loads(meta["history"])
    groups = h.pop("layer_groups")
    history = {key: tensors[f"history.{key}"].tolist() for key, _ in _HISTORY_SERIES}
    history["layer_grad_norms"] = [dict(zip(groups, row)) for row in tensors["history.layer_grad_norms"].tolist()]
    history.update(h)
    state = {"step": int(meta["step"]), "optimizer": opt, "rng": json.loads(meta["rng"]),
             "model_rng": json.loads(meta["model_rng"]) if "model_rng" in meta else None,
             "history": history}
    if "rng.torch" in tensors:
        state["torch_rng"] = tensors["rng.torch"]
    return state


# ------------------------------------------------------------------------ numpy_gpt models
def save(path: str | os.PathLike, model: GPT, trainer=None, tokenizer=None, run: dict | None = None) -> str:
    """Save a numpy_gpt model (and its Trainer's state, to resume) as one checkpoint file."""
    run = {"backend": "numpy", **(run or {})}
    return save_checkpoint(path, model.config, model.params,
                           trainer_state=None if trainer is None else trainer.state_dict(copy=False),
                           train_config=None if trainer is None else trainer.config,
                           tokenizer=tokenizer, run=run)


def load_model(path: str | os.PathLike, dtype=None, config: GPTConfig | None = None) -> tuple[GPT, Checkpoint]:
    """A numpy_gpt GPT from a checkpoint (in the dtype it was saved in, unless dtype is given).
    The model's params are ckpt.params, the arrays just read, not a copy of them."""
    ckpt = load_checkpoint(path, config, dtype=dtype)
    model = GPT(ckpt.config, seed=int(ckpt.run.get("seed", 0)), params=ckpt.params)   # read packed
    return model, ckpt


def check_resumable(ckpt: Checkpoint, optimizer: str | None = None) -> None:
    """A CheckpointError unless ckpt holds a trainer state to resume from, and a
    CheckpointMismatchError if it is another optimizer's than `optimizer` (a name of
    numpy_gpt.optim.OPTIMIZERS): one optimizer's buffers are not another's state."""
    if ckpt.trainer_state is None and "optimizer" in ckpt.metadata:
        raise CheckpointError(f"checkpoint {ckpt.path} was loaded with weights_only=True: load it again "
                              "without it to resume its training", ckpt.path)
    if ckpt.trainer_state is None:
        raise CheckpointError(f"checkpoint {ckpt.path} holds no training state to resume from", ckpt.path)
    saved = json.loads(ckpt.metadata["optimizer"]).get("name")
    if optimizer is not None and saved != optimizer:
        raise CheckpointMismatchError(f"checkpoint {ckpt.path} holds {saved}'s optimizer state, but this run's "
                                      f"optimizer is {optimizer}: resume it with {saved} (--optimizer {saved})",
                                      ckpt.path)


def restore_trainer(trainer, ckpt: Checkpoint) -> None:
    """Load a checkpoint's trainer state into a numpy_gpt Trainer (after building it on the checkpoint's model)."""
    check_resumable(ckpt, trainer.config.optimizer)
    state = dict(ckpt.trainer_state)
    if state.get("model_rng") is None:            # written by torch_gpt: keep the model's own dropout RNG
        state["model_rng"] = trainer.model.rng.bit_generator.state
    trainer.load_state_dict(state)
