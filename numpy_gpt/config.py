"""GPTConfig: every choice that shapes the model, shared by numpy_gpt and torch_gpt."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import ConfigError

POS_ENCODINGS = ("sinusoidal", "learned")
ACTIVATIONS = ("gelu", "gelu_exact", "relu")
NORMS = ("pre", "post", "none")
# The largest seed a run may take: torch.manual_seed takes a signed 64-bit integer (NumPy any >= 0).
MAX_SEED = 2 ** 63 - 1


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 65           # number of distinct tokens
    block_size: int = 64           # longest context the model sees (and rows of wpe)
    n_layer: int = 2               # transformer blocks
    n_head: int = 4                # attention heads; must divide n_embd
    n_embd: int = 64               # channels C of the residual stream
    pos_encoding: str = "learned"      # "learned" (GPT-2's wpe) or "sinusoidal" (a fixed table; trains slower here: docs/positional.md)
    activation: str = "gelu"       # "gelu" (tanh form, GPT-2), "gelu_exact" (erf), "relu"
    norm: str = "pre"              # "pre" (GPT-2), "post" (original Add & Norm), "none"
    mlp: bool = True               # False drops the feed-forward sublayer (the seeds' model)
    dropout: float = 0.0           # on embeddings, attention weights and residual branches, in training
    bias: bool = True              # biases in linear layers and layer norms
    tie_weights: bool = True       # the LM head reuses the token embedding wte

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        for name, allowed in (("pos_encoding", POS_ENCODINGS), ("activation", ACTIVATIONS),
                              ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_width(self) -> int:
        """H, the MLP's hidden width: 4 n_embd, as in GPT-2 (and the original transformer)."""
        return 4 * self.n_embd

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)
