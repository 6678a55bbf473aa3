import os
import runpy
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import numpy_gpt
from numpy_gpt.data import (CorpusDecodeError, CorpusNotFoundError, DataTooShortError, EmptyCorpusError,
                            demo_corpus, get_batch, load_text, sequences_to_batch, train_val_split)
from numpy_gpt.loss import IGNORE_INDEX, cross_entropy_forward
from numpy_gpt.tokenizers import CharTokenizer, WordTokenizer
from tests import strategies as S
from torch_gpt.data import batch_to_torch

# ---------------------------------------------------------------- demo corpus


def test_demo_corpus_is_english_of_the_promised_size_and_char_tokenizable():
    text = demo_corpus()
    assert 40_000 <= len(text.encode("utf-8")) <= 100_000
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert 40 <= tok.vocab_size <= 100
    words = text.split()
    assert len(set(words)) > 500 and text.count(". ") > 300


def test_demo_corpus_is_reproduced_by_its_generator():
    script = Path(numpy_gpt.__file__).parent / "data" / "make_demo_corpus.py"
    if not script.exists():                       # an installed wheel ships only the text
        pytest.skip("generator script not present")
    assert runpy.run_path(str(script))["make_corpus"]() == demo_corpus()


# ---------------------------------------------------------------- load_text


def write(data: bytes) -> str:
    fd, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def test_load_text_reads_utf8_exactly():
    text = "Grüße, 世界 🙂\r\nsecond line\n"
    path = write(text.encode("utf-8"))
    try:
        assert load_text(path) == text                           # CRLF kept
        assert load_text(Path(path)) == text
    finally:
        os.remove(path)
    path = write(b"\xef\xbb\xbf" + text.encode("utf-8"))
    try:
        assert load_text(path) == text                           # BOM dropped
    finally:
        os.remove(path)


def test_load_text_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(CorpusNotFoundError) as e:
        load_text(missing)
    assert isinstance(e.value, FileNotFoundError) and str(missing) in str(e.value)
    assert e.value.filename == str(missing)


@given(prefix=st.text(max_size=30), bad=st.sampled_from([b"\xff", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80"]),
       suffix=st.text(max_size=10))
def test_load_text_invalid_utf8_names_path_and_byte_offset(prefix, bad, suffix):
    head = prefix.encode("utf-8")
    path = write(head + bad + suffix.encode("utf-8"))
    try:
        with pytest.raises(CorpusDecodeError) as e:
            load_text(path)
    finally:
        os.remove(path)
    assert isinstance(e.value, ValueError)
    assert e.value.offset == len(head) and e.value.line == prefix.count("\n") + 1
    assert path in str(e.value) and f"byte offset {len(head)}" in str(e.value)


def test_the_decode_error_offset_counts_the_bom_it_dropped():
    # The offset is into the file as it is on disk, so a user can seek to it: 3 bytes of BOM, then "caf".
    path = write(b"\xef\xbb\xbf" + b"caf\xe9\nau lait")
    try:
        with pytest.raises(CorpusDecodeError) as e:
            load_text(path)
    finally:
        os.remove(path)
    assert (e.value.offset, e.value.line) == (6, 1) and "byte offset 6 (line 1)" in str(e.value)


def test_load_text_empty_file():
    for content in (b"", b"\xef\xbb\xbf"):
        path = write(content)
        try:
            with pytest.raises(EmptyCorpusError, match="empty"):
                load_text(path)
        finally:
            os.remove(path)


# ---------------------------------------------------------------- train_val_split


@given(n=st.integers(0, 200), frac=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]))
def test_train_val_split_is_a_contiguous_cut(n, frac):
    ids = np.arange(n, dtype=np.int32)
    train, val = train_val_split(ids, frac)
    assert len(val) == int(n * frac)
    assert np.array_equal(np.concatenate([train, val]), ids)


def test_train_val_split_refuses_bad_input():
    for frac in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            train_val_split(np.arange(10), frac)
    with pytest.raises(ValueError, match="1-D"):
        train_val_split(np.zeros((2, 3), dtype=np.int64))


# ---------------------------------------------------------------- get_batch


@given(data=st.data())
def test_get_batch_draws_shifted_windows(data):
    T = data.draw(st.integers(1, 16), label="block_size")
    B = data.draw(st.integers(1, 8), label="batch_size")
    N = data.draw(st.integers(T + 1, 200), label="N")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    # data[i] = i + 7 makes every value name its own position.
    tokens = (np.arange(N) + 7).astype(data.draw(st.sampled_from([np.uint16, np.int32, np.int64])))
    x, y = get_batch(tokens, T, B, np.random.default_rng(seed))
    assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == np.int64
    assert x.flags.c_contiguous and y.flags.c_contiguous
    starts = x[:, 0] - 7
    assert np.all(starts >= 0) and np.all(starts + T + 1 <= N)                 # every target exists
    assert np.array_equal(x, starts[:, None] + 7 + np.arange(T))               # contiguous windows
    assert np.array_equal(y, x + 1)                                            # y is x shifted by one
    assert np.array_equal(y[:, :-1], x[:, 1:])
    x2, y2 = get_batch(tokens, T, B, np.random.default_rng(seed))              # same seed, same batch
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_get_batch_reaches_both_ends_and_advances_the_generator():
    tokens, T = np.arange(10), 3
    rng = np.random.default_rng(0)
    x, _ = get_batch(tokens, T, 2000, rng)
    assert set(x[:, 0].tolist()) == set(range(10 - T))                        # starts 0..6, all of them
    a, _ = get_batch(tokens, T, 8, rng)
    b, _ = get_batch(tokens, T, 8, rng)
    assert not np.array_equal(a, b)
    x, y = get_batch(np.arange(T + 1), T, 4, rng)                              # exactly one block fits
    assert np.array_equal(x, np.tile(np.arange(T), (4, 1))) and np.array_equal(y, x + 1)


def test_get_batch_too_short_data_says_the_lengths():
    with pytest.raises(DataTooShortError, match=r"data has 8 tokens.*block_size=8 needs 9"):
        get_batch(np.arange(8), 8, 2, np.random.default_rng(0))
    assert issubclass(DataTooShortError, ValueError)
    with pytest.raises(TypeError):
        get_batch(np.arange(100), 8, 2, 0)


def test_get_batch_on_the_demo_corpus():
    text = demo_corpus()
    tok = CharTokenizer.from_text(text)
    train, val = train_val_split(np.array(tok.encode(text)))
    x, y = get_batch(train, 64, 4, np.random.default_rng(1))
    for row_x, row_y in zip(x, y):
        assert tok.decode(row_x)[1:] == tok.decode(row_y)[:-1]
        assert tok.decode(row_x) in text


# ---------------------------------------------------------------- sequences_to_batch


def test_seed_sentences_batch_with_ignored_padding():
    vocab = ["what", "is", "apple", "healthy", "<EOS>"]
    tok = WordTokenizer(vocab)
    seqs = [tok.encode("what is apple <EOS> healthy"), tok.encode("apple <EOS> healthy")]
    x, y = sequences_to_batch(seqs, pad_id=tok.eos_id)
    ix = vocab.index
    assert x.dtype == y.dtype == np.int64
    assert x.tolist() == [[ix("what"), ix("is"), ix("apple"), ix("<EOS>")],
                          [ix("apple"), ix("<EOS>"), ix("<EOS>"), ix("<EOS>")]]
    assert y.tolist() == [[ix("is"), ix("apple"), ix("<EOS>"), ix("healthy")],
                          [ix("<EOS>"), ix("healthy"), IGNORE_INDEX, IGNORE_INDEX]]


@given(data=st.data())
def test_padded_batch_loss_equals_the_loss_over_the_real_tokens(data):
    V = 6
    lengths = data.draw(st.lists(st.integers(2, 7), min_size=1, max_size=4), label="lengths")
    r = S.rng(data)
    seqs = [r.integers(0, V, size=n).tolist() for n in lengths]
    x, y = sequences_to_batch(seqs)
    assert x.shape == (len(seqs), max(lengths) - 1)
    logits = r.standard_normal(x.shape + (V,))
    loss, _ = cross_entropy_forward(logits, y)
    # Only the real positions count: rebuild them by hand.
    real_logits = np.concatenate([logits[b, :n - 1] for b, n in enumerate(lengths)])
    real_targets = np.concatenate([s[1:] for s in seqs])
    expected, _ = cross_entropy_forward(real_logits, real_targets)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_sequences_to_batch_refuses_what_it_cannot_batch():
    with pytest.raises(DataTooShortError, match="sequence 1 has 1 ids"):
        sequences_to_batch([[1, 2, 3], [4]])
    with pytest.raises(ValueError):
        sequences_to_batch([])


# ---------------------------------------------------------------- torch side


def test_batch_to_torch_gives_long_tensors_that_do_not_alias():
    x, y = get_batch(np.arange(50, dtype=np.uint16), 5, 3, np.random.default_rng(0))
    tx, ty = batch_to_torch(x, y)
    assert tx.dtype == ty.dtype == torch.long and tx.shape == (3, 5)
    assert np.array_equal(tx.numpy(), x) and np.array_equal(ty.numpy(), y)
    tx[0, 0] = -1
    assert x[0, 0] != -1
