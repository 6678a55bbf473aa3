"""Step 4: from the toy to a character-level GPT, trained on the shipped demo corpus.

The same code as the seed model, with the parts the toy left out switched on: layer norm
(pre-LN, as GPT-2), the MLP with GELU, 4 heads, learned positions, a tied head, AdamW
with gradient clipping and a warmup + cosine schedule. About 108k parameters.

    .venv/bin/python examples/04_char_model.py [--steps 300]
Pictures of such a run (attention per head, gradient norms, loss): numpy-gpt pictures.
"""
import argparse

import numpy as np

from numpy_gpt import GPT
from numpy_gpt.demo import char_setup
from numpy_gpt.train import Trainer

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--prompt", default="Once upon a time")
args = parser.parse_args()

tok, train, val, cfg, tcfg = char_setup(steps=args.steps)          # the demo's model and schedule
print(f"{tok.vocab_size} characters, {len(train):,} training / {len(val):,} validation tokens")
print("config:", {k: v for k, v in cfg.to_dict().items()})
model = GPT(cfg, seed=0, dtype=np.float32)
print(f"{model.num_params():,} parameters; training {args.steps} steps of {tcfg.batch_size} x {cfg.block_size} tokens")

history = Trainer(model, train, val, tcfg).run()                  # progress bar when tqdm is installed
last = history.eval[-1]
print(f"validation loss {last['val_loss']:.3f} nats/char, perplexity {last['val_ppl']:.2f} "
      f"(a uniform guess: ln {tok.vocab_size} = {np.log(tok.vocab_size):.2f})")

ids = model.generate(np.array([tok.encode(args.prompt)]), 300, temperature=0.8, top_k=20,
                     rng=np.random.default_rng(0))
print("\n" + tok.decode(ids[0].tolist()))
