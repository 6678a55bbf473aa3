"""Tokenizers: text <-> lists of integer token ids.

Three tokenizers share one interface (the `Tokenizer` base class):

    encode(text) -> list[int]        decode(ids) -> str
    vocab_size                       kind                 ("word", "char", "byte_bpe")
    to_dict() -> dict                from_dict(d)         (plain JSON data, for checkpoints)

- WordTokenizer: whitespace-separated words from a fixed list, plus "<EOS>".
  The toy seeds of this project ("what is apple <EOS> healthy") use it.
- CharTokenizer: one id per character of a corpus' alphabet (sorted).
- ByteBPETokenizer: byte-level byte-pair encoding, trained here or loaded
  from GPT-2's published vocab.json + merges.txt.

`tokenizer_from_dict(d)` rebuilds whichever tokenizer `d` describes.

Byte-level BPE in five lines. Text is UTF-8 bytes, so ids 0..255 already
spell every string. Training repeats: count adjacent id pairs, give the most
frequent pair a new id, replace it everywhere. Encoding replays the learned
merges, lowest rank (earliest learned) first; decoding concatenates each
token's bytes. Because every token is a byte string, decode(encode(t)) == t
for any text t, even text never seen in training.
"""
from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from .errors import FormatError, InputError

EOS = "<EOS>"

# GPT-2's pre-split, written for the standard library's `re` (which lacks \p{L}
# and \p{N}): letters are [^\W\d_], digits \d. It agrees with GPT-2 on ASCII;
# on rare Unicode (e.g. superscript digits, which `re` counts as letters) the
# chunks differ slightly. Chunks keep merges inside words: " the" is a token,
# "e t" never is.
GPT2_SPLIT_PATTERN = r"""'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


class UnknownTokenError(InputError):
    """A word, character or id that the tokenizer's vocabulary does not contain.

    `token` holds the offending word, character or id.
    """

    def __init__(self, message: str, token: Any = None):
        super().__init__(message)
        self.token = token


class TokenizerFormatError(FormatError):
    """A tokenizer description (to_dict data or GPT-2 files) that is malformed."""


def _examples(items: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(repr(s) for s in items[:n])
    return shown + (", ..." if len(items) > n else "")


def _as_id_list(ids: Iterable[int], vocab_size: int) -> list[int]:
    """ids as Python ints, each checked to lie in [0, vocab_size).

    Negative ids are refused: Python indexing would silently wrap them around.
    """
    if hasattr(ids, "tolist"):                  # numpy arrays and scalars
        ids = ids.tolist()
    out = [int(i) for i in ids]
    for pos, i in enumerate(out):
        if not 0 <= i < vocab_size:
            raise UnknownTokenError(
                f"token id {i} at position {pos} is outside the vocabulary "
                f"(ids 0..{vocab_size - 1})", i)
    return out


class Tokenizer(ABC):
    """The interface every tokenizer implements."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids; every id lies in [0, vocab_size)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; raises UnknownTokenError if it cannot be spelled."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of a sequence of ids (a list, or a 1-D numpy integer array)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description; tokenizer_from_dict inverts it."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """Rebuild from to_dict's output."""

    @classmethod
    def _check_kind(cls, d: dict[str, Any]) -> None:
        if not isinstance(d, dict) or d.get("kind") != cls.kind:
            got = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise TokenizerFormatError(f"expected a tokenizer dict of kind {cls.kind!r}, got {got!r}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    __hash__ = None  # mutable-looking value objects; equality only

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class WordTokenizer(Tokenizer):
    """One id per whitespace-separated word, in the order the words are given.

    >>> tok = WordTokenizer(["what", "is", "apple", "healthy", "<EOS>"])
    >>> tok.encode("what is apple <EOS> healthy")
    [0, 1, 2, 4, 3]

    "<EOS>" is always in the vocabulary: appended last if `words` lacks it.
    decode joins words with single spaces, so decode(encode(t)) equals
    " ".join(t.split()).
    """

    kind = "word"

    def __init__(self, words: Sequence[str], eos: str = EOS):
        words = list(words)
        if eos not in words:
            words.append(eos)
        for w in words:
            if not isinstance(w, str) or not w or w != "".join(w.split()):
                raise ValueError(f"a vocabulary word must be a non-empty string without whitespace, got {w!r}")
        dupes = sorted(w for w, c in Counter(words).items() if c > 1)
        if dupes:
            raise ValueError(f"duplicate words in the vocabulary: {_examples(dupes)}")
        self.words: list[str] = words
        self.eos = eos
        self._ids = {w: i for i, w in enumerate(words)}

    @classmethod
    def from_text(cls, text: str, eos: str = EOS) -> WordTokenizer:
        """Vocabulary = the words of `text` in order of first appearance, then eos last."""
        seen = dict.fromkeys(w for w in text.split() if w != eos)
        if not seen:
            raise ValueError("cannot build a word vocabulary from a text without words")
        return cls(list(seen), eos=eos)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def eos_id(self) -> int:
        """Id of the end-of-sequence word."""
        return self._ids[self.eos]

    def encode(self, text: str) -> list[int]:
        ids = []
        for pos, w in enumerate(text.split()):
            i = self._ids.get(w)
            if i is None:
                raise UnknownTokenError(
                    f"unknown word {w!r} (word {pos} of the text); the vocabulary has "
                    f"{self.vocab_size} words: {_examples(self.words)}", w)
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in _as_id_list(ids, self.vocab_size))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": list(self.words), "eos": self.eos}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        cls._check_kind(d)
        return cls(d["words"], eos=d.get("eos", EOS))


class CharTokenizer(Tokenizer):
    """One id per character; ids follow the order of `chars`.

    from_text sorts the text's distinct characters, so the same corpus always
    gives the same ids.
    """

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"each vocabulary entry must be one character, got {c!r}")
        if not chars:
            raise ValueError("a character vocabulary needs at least one character")
        if len(set(chars)) != len(chars):
            dupes = sorted(c for c, n in Counter(chars).items() if n > 1)
            raise ValueError(f"duplicate characters in the vocabulary: {_examples(dupes)}")
        self.chars: list[str] = chars
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Vocabulary = the sorted set of characters in `text`."""
        if not text:
            raise ValueError("cannot build a character vocabulary from an empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        try:
            return [ids[c] for c in text]
        except KeyError as e:
            c = e.args[0]
            raise UnknownTokenError(
                f"unknown character {c!r} (U+{ord(c):04X}) at position {text.index(c)}; "
                f"the vocabulary has {self.vocab_size} characters: {_examples(self.chars, 20)}", c
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in _as_id_list(ids, self.vocab_size))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": list(self.chars)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        cls._check_kind(d)
        return cls(d["chars"])


def _split(text: str, regex: re.Pattern | None) -> list[str]:
    """Cut text into chunks that merges may not cross.

    Any text the pattern skips becomes a chunk of its own, so the chunks always
    concatenate back to `text` (the GPT-2 pattern skips nothing anyway).
    """
    if regex is None:
        return [text] if text else []
    chunks, pos = [], 0
    for m in regex.finditer(text):
        if m.start() > pos:
            chunks.append(text[pos:m.start()])
        if m.end() > m.start():
            chunks.append(m.group())
        pos = max(pos, m.end())
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of `pair` in ids by new_id, scanning left to right."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class ByteBPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding.

    State (all plain data):
      byte_ids        256 ints: byte_ids[b] is the id of the one-byte token b
                      (the identity when trained here; a permutation in GPT-2).
      merges          [(left, right, new), ...] in rank order: rank 0 was learned first.
      special_tokens  {text: id} for ids that are neither bytes nor merges (GPT-2's
                      "<|endoftext|>"). decode spells them; encode treats their
                      text as ordinary text.
      pattern         the pre-split regex (None: the whole text is one chunk).
    Ids must be exactly 0..vocab_size-1.
    """

    kind = "byte_bpe"

    def __init__(self, merges: Sequence[Sequence[int]] = (), pattern: str | None = GPT2_SPLIT_PATTERN,
                 byte_ids: Sequence[int] | None = None, special_tokens: dict[str, int] | None = None):
        byte_ids = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
            raise TokenizerFormatError("byte_ids must be 256 distinct ids, one per byte value")
        token_bytes: dict[int, bytes] = {i: bytes([b]) for b, i in enumerate(byte_ids)}
        ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, m in enumerate(merges):
            a, b, new = (int(v) for v in m)
            if a not in token_bytes or b not in token_bytes:
                raise TokenizerFormatError(f"merge {rank} ({a}, {b}) uses an id not defined before it")
            if new in token_bytes or (a, b) in ranks:
                raise TokenizerFormatError(f"merge {rank} ({a}, {b}) -> {new} redefines an id or a pair")
            token_bytes[new] = token_bytes[a] + token_bytes[b]
            ranks[(a, b)] = (rank, new)
        special_tokens = dict(special_tokens or {})
        for text, i in special_tokens.items():
            if i in token_bytes:
                raise TokenizerFormatError(f"special token {text!r} reuses id {i}")
            token_bytes[i] = text.encode("utf-8")
        V = len(token_bytes)
        if sorted(token_bytes) != list(range(V)):
            raise TokenizerFormatError(f"token ids must be exactly 0..{V - 1}")
        self.byte_ids = byte_ids
        self.merges: list[tuple[int, int, int]] = [tuple(int(v) for v in m) for m in merges]
        self.special_tokens = special_tokens
        self.pattern = pattern
        self.token_bytes: list[bytes] = [token_bytes[i] for i in range(V)]
        self._ranks = ranks
        self._regex = re.compile(pattern) if pattern is not None else None

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = GPT2_SPLIT_PATTERN) -> ByteBPETokenizer:
        """Learn vocab_size - 256 merges from `text`.

        Each step merges the most frequent adjacent pair; ties go to the
        smallest pair (left id, then right id), so training is deterministic.
        Stops early, with a smaller vocabulary, if no adjacent pair is left.

        Speed: identical chunks are counted once (a word list with
        frequencies), and after each merge only the chunks that contained the
        pair update the pair counts: 64 KB to vocab 512 takes ~0.1 s. With
        pattern=None the text is one long chunk and each merge rescans all of
        it (seconds for 50 KB), so keep that for small texts.
        """
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the byte tokens), got {vocab_size}")
        regex = re.compile(pattern) if pattern is not None else None
        chunk_counts = Counter(_split(text, regex))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())
        counts: dict[tuple[int, int], int] = {}            # pair -> occurrences in the text
        where: dict[tuple[int, int], set[int]] = {}        # pair -> words that may contain it
        for w_idx, (w, f) in enumerate(zip(words, freqs)):
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + f
                where.setdefault(p, set()).add(w_idx)
        merges = []
        for new_id in range(256, vocab_size):
            if not counts:
                break
            best = min(counts, key=lambda p: (-counts[p], p))
            merges.append((best[0], best[1], new_id))
            for w_idx in where.pop(best):
                w, f = words[w_idx], freqs[w_idx]
                for p in zip(w, w[1:]):                    # forget the word's old pairs ...
                    counts[p] -= f
                    if not counts[p]:
                        del counts[p]
                w = words[w_idx] = _merge(w, best, new_id)
                for p in zip(w, w[1:]):                    # ... and count its new ones
                    counts[p] = counts.get(p, 0) + f
                    where.setdefault(p, set()).add(w_idx)
        return cls(merges, pattern=pattern)

    # -- GPT-2's files ----------------------------------------------------------------------

    @classmethod
    def from_gpt2_files(cls, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike) -> ByteBPETokenizer:
        """Load GPT-2's published vocab.json ({token: id}) and merges.txt ("left right" lines).

        GPT-2 writes each token's bytes as printable characters (see
        gpt2_byte_to_unicode); we map them back to bytes. Vocabulary entries
        that are neither a byte nor a merge become special tokens.
        """
        with open(vocab_json, encoding="utf-8") as f:
            vocab: dict[str, int] = json.load(f)
        with open(merges_txt, encoding="utf-8") as f:
            lines = f.read().split("\n")
        byte_to_char = gpt2_byte_to_unicode()
        try:
            byte_ids = [vocab[byte_to_char[b]] for b in range(256)]
        except KeyError as e:
            raise TokenizerFormatError(f"{vocab_json}: byte token {e.args[0]!r} is missing") from None
        merges, made = [], set(byte_ids)
        for n, line in enumerate(lines, start=1):
            line = line.rstrip("\r")
            if not line or (n == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise TokenizerFormatError(f"{merges_txt}:{n}: expected 'left right', got {line!r}")
            left, right = parts
            try:
                merges.append((vocab[left], vocab[right], vocab[left + right]))
            except KeyError as e:
                raise TokenizerFormatError(f"{merges_txt}:{n}: token {e.args[0]!r} is not in {vocab_json}") from None
            made.add(vocab[left + right])
        special = {text: i for text, i in vocab.items() if i not in made}
        return cls(merges, pattern=GPT2_SPLIT_PATTERN, byte_ids=byte_ids, special_tokens=special)

    # -- the interface ----------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes)

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        ranks, never = self._ranks, (float("inf"), -1)
        while len(ids) >= 2:
            # The pair learned earliest goes first, as in training.
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, never))
            if pair not in ranks:
                break
            ids = _merge(ids, pair, ranks[pair][1])
        return ids

    def encode(self, text: str) -> list[int]:
        """Ids of text's UTF-8 bytes after the merges; defined for every string
        that has a UTF-8 encoding (all but lone surrogates, which are refused)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:               # Python's stand-in for bytes that were not UTF-8
            bad = text[e.start]
            raise UnknownTokenError(f"character {bad!r} at position {e.start} has no UTF-8 encoding (a lone "
                                    "surrogate, as Python makes of bytes that are not UTF-8)", bad) from None
        ids: list[int] = []
        seen: dict[str, list[int]] = {}                   # a corpus repeats its words a lot
        for chunk in _split(text, self._regex):
            if chunk not in seen:
                seen[chunk] = self._encode_chunk(chunk)
            ids.extend(seen[chunk])
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of ids (which, from a model, need not be valid UTF-8)."""
        return b"".join(self.token_bytes[i] for i in _as_id_list(ids, self.vocab_size))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; byte sequences that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pattern": self.pattern, "byte_ids": list(self.byte_ids),
                "merges": [list(m) for m in self.merges], "special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ByteBPETokenizer:
        cls._check_kind(d)
        return cls(d["merges"], pattern=d.get("pattern"), byte_ids=d.get("byte_ids"),
                   special_tokens=d.get("special_tokens"))


def gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte value to a printable character.

    The bytes that already print as themselves and are not whitespace ("!" to
    "~", "¡" to "¬", "®" to "ÿ") keep their own character; the other 68 bytes
    (controls, space, DEL, NBSP, soft hyphen, ...) take U+0100, U+0101, ... in
    increasing byte order. So space (byte 32) is "Ġ" (U+0120), newline "Ċ".
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    moved = (b for b in range(256) if b not in table)
    table.update({b: chr(256 + n) for n, b in enumerate(moved)})
    return dict(sorted(table.items()))


_KINDS: dict[str, type[Tokenizer]] = {t.kind: t for t in (WordTokenizer, CharTokenizer, ByteBPETokenizer)}


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild any tokenizer from its to_dict() output, choosing the class by d["kind"]."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise TokenizerFormatError(f"unknown tokenizer kind {kind!r}; known kinds: {sorted(_KINDS)}")
    return _KINDS[kind].from_dict(d)
