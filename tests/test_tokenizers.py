import json
import re
from collections import Counter
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from numpy_gpt.data import demo_corpus
from numpy_gpt.tokenizers import (GPT2_SPLIT_PATTERN, ByteBPETokenizer, CharTokenizer, Tokenizer,
                                  TokenizerFormatError, UnknownTokenError, WordTokenizer,
                                  gpt2_byte_to_unicode, tokenizer_from_dict)

# The project's two toy seeds: vocabularies and training sentences.
SEEDS = [
    (["what", "is", "apple", "healthy", "<EOS>"], ["what is apple <EOS> healthy", "what is healthy <EOS> apple"]),
    (["what", "is", "CNN", "Great", "<EOS>"], ["what is CNN <EOS> Great", "CNN is Great <EOS>"]),
]


@lru_cache(maxsize=None)
def corpus_bpe(vocab_size: int = 400) -> ByteBPETokenizer:
    return ByteBPETokenizer.train(demo_corpus()[:20_000], vocab_size)


# ---------------------------------------------------------------- word


@pytest.mark.parametrize("vocab, sentences", SEEDS)
def test_seed_sentences_encode_to_their_vocabulary_positions(vocab, sentences):
    tok = WordTokenizer(vocab)
    assert tok.vocab_size == len(vocab) and tok.eos_id == vocab.index("<EOS>")
    for s in sentences:
        expected = [vocab.index(w) for w in s.split()]
        assert tok.encode(s) == expected
        assert tok.decode(expected) == s


@pytest.mark.parametrize("vocab, sentences", SEEDS)
def test_word_vocab_from_text_keeps_first_appearance_and_puts_eos_last(vocab, sentences):
    assert WordTokenizer.from_text(" ".join(sentences)).words == vocab


@given(data=st.data(), seed=st.sampled_from(SEEDS))
def test_word_round_trip(data, seed):
    vocab = seed[0]
    words = data.draw(st.lists(st.sampled_from(vocab), max_size=12), label="words")
    gaps = data.draw(st.lists(st.sampled_from([" ", "  ", "\n", "\t"]), min_size=len(words),
                              max_size=len(words)), label="gaps")
    text = "".join(g + w for g, w in zip(gaps, words))
    tok = WordTokenizer(vocab)
    assert tok.encode(text) == [vocab.index(w) for w in words]
    assert tok.decode(tok.encode(text)) == " ".join(words)


def test_word_tokenizer_appends_eos_and_refuses_bad_vocabularies():
    assert WordTokenizer(["a", "b"]).words == ["a", "b", "<EOS>"]
    for bad in (["a", "a"], ["two words"], [""]):
        with pytest.raises(ValueError):
            WordTokenizer(bad)


def test_unknown_word_is_a_typed_error_naming_it_and_known_words():
    tok = WordTokenizer(SEEDS[0][0])
    with pytest.raises(UnknownTokenError) as e:
        tok.encode("what is banana")
    assert isinstance(e.value, ValueError) and e.value.token == "banana"
    assert "'banana'" in str(e.value) and "'apple'" in str(e.value)


# ---------------------------------------------------------------- char


@given(data=st.data())
def test_char_round_trip_on_text_from_the_alphabet(data):
    corpus = data.draw(st.text(min_size=1), label="corpus")
    tok = CharTokenizer.from_text(corpus)
    assert tok.chars == sorted(set(corpus)) and tok.vocab_size == len(set(corpus))
    text = data.draw(st.text(alphabet=tok.chars), label="text")
    ids = tok.encode(text)
    assert len(ids) == len(text) and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(np.array(ids, dtype=np.int64)) == text


def test_unknown_character_is_a_typed_error_naming_it():
    tok = CharTokenizer.from_text("hello world")
    with pytest.raises(UnknownTokenError, match=r"'é' \(U\+00E9\) at position 4"):
        tok.encode("hellé")


def test_a_lone_surrogate_is_a_typed_error_for_the_byte_level_tokenizer():
    # A command line's bytes that are not UTF-8 reach Python as lone surrogates ('\udcff'), which
    # have no UTF-8 bytes to look up; a UnicodeEncodeError made `numpy-gpt generate` an internal error.
    tok = corpus_bpe()
    with pytest.raises(UnknownTokenError, match=r"'\\udcff' at position 1 has no UTF-8 encoding") as e:
        tok.encode("a\udcffb")
    assert e.value.token == "\udcff"


def test_decoding_an_id_outside_the_vocabulary_is_an_error():
    for tok in (CharTokenizer.from_text("abc"), WordTokenizer(["x"]), corpus_bpe()):
        V = tok.vocab_size
        assert tok.decode([V - 1]) == tok.decode(np.array([V - 1]))
        for bad in ([V], [0, V + 10], [-1]):        # -1 would silently mean "the last token"
            with pytest.raises(UnknownTokenError, match=f"token id {bad[-1]} "):
                tok.decode(bad)


# ---------------------------------------------------------------- byte-level BPE

def ref_merge(ids, a, b, new):
    """A plain left-to-right rewrite, written independently of the library's."""
    res, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == [a, b]:
            res.append(new)
            i += 2
        else:
            res.append(ids[i])
            i += 1
    return res


def ref_chunks(text, pattern):
    if pattern is None:
        return [text] if text else []
    return re.findall(pattern, text)


def ref_train(text, vocab_size, pattern):
    """The slow textbook trainer: recount every pair after every merge."""
    chunks = [list(c.encode("utf-8")) for c in ref_chunks(text, pattern)]
    merges = []
    for new in range(256, vocab_size):
        counts = Counter(p for c in chunks for p in zip(c, c[1:]))
        if not counts:
            break
        top = max(counts.values())
        a, b = min(p for p, n in counts.items() if n == top)
        merges.append((a, b, new))
        chunks = [ref_merge(c, a, b, new) for c in chunks]
    return merges


def ref_encode(merges, text, pattern):
    """Apply every merge, in rank order, to every chunk."""
    out = []
    for c in ref_chunks(text, pattern):
        ids = list(c.encode("utf-8"))
        for a, b, new in merges:
            ids = ref_merge(ids, a, b, new)
        out += ids
    return out


def test_bpe_on_the_textbook_example():
    # "aaabdaaabac": aa (4 times) -> 256; then ab and 256 a tie at 2, and (97, 98) < (256, 97)
    # -> 257; then (256, 257) -> 258, leaving 258 d 258 a c.
    tok = ByteBPETokenizer.train("aaabdaaabac", 259, pattern=None)
    assert tok.merges == [(97, 97, 256), (97, 98, 257), (256, 257, 258)]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    assert tok.token_bytes[258] == b"aaab"


@given(text=st.text(alphabet="ab c\né🙂", max_size=60), n_merges=st.integers(0, 20),
       pattern=st.sampled_from([GPT2_SPLIT_PATTERN, None]))
def test_bpe_training_and_encoding_match_the_slow_reference(text, n_merges, pattern):
    tok = ByteBPETokenizer.train(text, 256 + n_merges, pattern=pattern)
    merges = ref_train(text, 256 + n_merges, pattern)
    assert tok.merges == merges
    assert tok.encode(text) == ref_encode(merges, text, pattern)


@given(text=st.text())
@example("Hello, world! Ünïcödé, 中文, emoji 🙂👍🏽 and a ZWJ family 👨‍👩‍👧")
@example("  leading, trailing and   repeated   spaces \n\n\t ")
@example("")
def test_bpe_round_trips_any_text(text):
    tok = corpus_bpe()
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert len(ids) <= len(text.encode("utf-8"))


def test_bpe_has_the_asked_vocab_size_and_its_merges_shorten_the_text():
    text = demo_corpus()[:20_000]
    tok = corpus_bpe(400)
    assert tok.vocab_size == 400 and len(tok.merges) == 144
    n_bytes, n_ids = len(text.encode("utf-8")), len(tok.encode(text))
    assert n_ids <= n_bytes - 144        # every merge removed at least one token from the text
    assert n_ids < 0.6 * n_bytes         # and on English, many more
    fewer = ByteBPETokenizer.train(text, 300)
    assert len(tok.encode(text)) < len(fewer.encode(text)) < n_bytes


def test_bpe_training_is_deterministic_and_stops_when_no_pair_is_left():
    text = demo_corpus()[:5_000]
    assert ByteBPETokenizer.train(text, 320).merges == ByteBPETokenizer.train(text, 320).merges
    tiny = ByteBPETokenizer.train("ab ab", 1000)   # chunks "ab", " ab": only 2 merges possible
    assert tiny.vocab_size == 258 and tiny.encode("ab ab") == [256, 257]


def test_bpe_trains_fast_enough_on_the_demo_corpus():
    import time
    t0 = time.perf_counter()
    tok = ByteBPETokenizer.train(demo_corpus(), 512)
    assert time.perf_counter() - t0 < 5.0
    assert tok.vocab_size == 512


def test_bpe_decode_replaces_broken_utf8_but_decode_bytes_is_exact():
    tok = ByteBPETokenizer()                       # no merges: ids are bytes
    smile = list("🙂".encode("utf-8"))
    assert tok.decode(smile[:2]) == "\ufffd"
    assert tok.decode_bytes(smile[:2]) == "🙂".encode("utf-8")[:2]


# ---------------------------------------------------------------- GPT-2 files


def test_gpt2_byte_map_is_printable_and_puts_space_at_G_dot():
    table = gpt2_byte_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    # 0xA0 (NBSP) is the 67th moved byte, so U+0142 "ł": GPT-2's familiar "Âł" is UTF-8's C2 A0.
    assert table[0] == "\u0100" and table[0xA0] == "ł"
    # Of the Latin-1 signs only the soft hyphen (0xAD) is moved, last of all the 68: U+0143 "Ń".
    # Its neighbours keep their own characters.
    assert table[0xAC] == "¬" and table[0xAD] == "\u0143" and table[0xAE] == "®"


def test_gpt2_files_load(tmp_path):
    table = gpt2_byte_to_unicode()
    # Give the 256 byte tokens a scrambled order, as GPT-2's own vocab.json does.
    order = np.random.default_rng(0).permutation(256)
    vocab = {table[int(b)]: i for i, b in enumerate(order)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                         encoding="utf-8")
    tok = ByteBPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert tok.vocab_size == 256 + 4 + 1
    assert tok.encode(" the") == [vocab["Ġthe"]]
    assert tok.encode("hello the") == [vocab["he"], vocab["ll"], vocab["o"], vocab["Ġthe"]]
    assert tok.encode("the") == [vocab["t"], vocab["he"]]       # " t" needs the space
    assert tok.decode([vocab["<|endoftext|>"]]) == "<|endoftext|>"
    text = "Hello there, ünïcode 🙂 the end"
    assert tok.decode(tok.encode(text)) == text
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))) == tok


def test_only_the_first_line_of_merges_txt_may_be_a_version_header(tmp_path):
    # "#" is a byte token like any other: a later line "# #" is the merge of two of them, not a comment.
    table = gpt2_byte_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    vocab["##"] = 256
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n# #\n", encoding="utf-8")
    tok = ByteBPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert tok.merges == [(ord("#"), ord("#"), 256)] and tok.special_tokens == {}
    assert tok.encode("a ##") == [ord("a"), ord(" "), 256] and tok.decode([256]) == "##"


def test_malformed_gpt2_merges_are_a_format_error(tmp_path):
    table = gpt2_byte_to_unicode()
    (tmp_path / "vocab.json").write_text(json.dumps({table[b]: b for b in range(256)}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh e\n", encoding="utf-8")
    with pytest.raises(TokenizerFormatError, match="'he'"):
        ByteBPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


# ---------------------------------------------------------------- the shared interface


def all_kinds() -> list[Tokenizer]:
    return [WordTokenizer(SEEDS[0][0]), CharTokenizer.from_text("hello world"), corpus_bpe()]


@pytest.mark.parametrize("tok", all_kinds(), ids=lambda t: t.kind)
def test_to_dict_survives_json_and_rebuilds_the_same_tokenizer(tok):
    d = json.loads(json.dumps(tok.to_dict()))
    back = tokenizer_from_dict(d)
    assert type(back) is type(tok) and back == tok and back.vocab_size == tok.vocab_size
    text = "what is apple" if tok.kind == "word" else "hello world"
    assert back.encode(text) == tok.encode(text)
    with pytest.raises(TokenizerFormatError):
        (CharTokenizer if tok.kind != "char" else WordTokenizer).from_dict(d)


def test_kinds_and_unknown_kind():
    assert [t.kind for t in all_kinds()] == ["word", "char", "byte_bpe"]
    with pytest.raises(TokenizerFormatError, match="'sentencepiece'"):
        tokenizer_from_dict({"kind": "sentencepiece"})


def test_the_gpt2_pattern_splits_off_english_contractions():
    # GPT-2's pre-tokenizer (Radford et al., 2019, encoder.py's pattern) keeps 's 't 're 've 'm 'll
    # 'd as chunks of their own, each with its apostrophe, and a space before a word with the word.
    from numpy_gpt.tokenizers import _split
    regex = re.compile(GPT2_SPLIT_PATTERN)
    assert _split("don't", regex) == ["don", "'t"]
    assert _split("we'll see it's 42", regex) == ["we", "'ll", " see", " it", "'s", " 42"]
    assert _split("they're", regex) == ["they", "'re"]
