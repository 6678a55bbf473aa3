"""Tokenizers: numpy_gpt's, re-exported unchanged.

Tokenization is plain Python and not torch's business, so both sides share
one implementation and always agree on the ids.
"""
from numpy_gpt.tokenizers import (EOS, GPT2_SPLIT_PATTERN, ByteBPETokenizer, CharTokenizer, Tokenizer,
                                  TokenizerFormatError, UnknownTokenError, WordTokenizer,
                                  gpt2_byte_to_unicode, tokenizer_from_dict)

__all__ = ["EOS", "GPT2_SPLIT_PATTERN", "ByteBPETokenizer", "CharTokenizer", "Tokenizer",
           "TokenizerFormatError", "UnknownTokenError", "WordTokenizer", "gpt2_byte_to_unicode",
           "tokenizer_from_dict"]
