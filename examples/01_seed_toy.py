"""Step 1: the seed toy problems, the smallest model in this project, in NumPy and in torch.

A 5-word vocabulary, d_model = 2, one attention head, no layer norm, no MLP: 44 numbers
in all. Trained for 30 epochs (Adam, lr 0.1) on two sentences, it answers a question.

    .venv/bin/python examples/01_seed_toy.py
Next: examples/02_trace.py prints every number of one training step of this model.
"""
import numpy as np

from numpy_gpt.seeds import SEEDS, seed_problem, train_seed

tok, x, y, spec = seed_problem("apple")
print("vocabulary:", {i: w for i, w in enumerate(tok.words)})
print("the training batch (ids): inputs x and targets y = x shifted by one word")
print(x, y, sep="\n")

# Train the NumPy model: every forward and backward here is written by hand in numpy_gpt/.
model, tok, history, answers = train_seed("apple", seed=0)
print(f"\nnumpy_gpt: {model.num_params()} parameters")
for name, p in model.params.items():
    print(f"  {name:24} {str(p.shape):8} {np.array2string(p.ravel()[:4], precision=3)}{' ...' if p.size > 4 else ''}")
print(f"loss {history.loss[0]:.4f} -> {history.loss[-1]:.4f} after {len(history.loss)} epochs")
for prompt, answer in answers.items():
    print(f"  {prompt!r:24} -> {answer!r}")

# The same problem in torch_gpt, from the same initial weights: autograd instead of hand-written
# backwards. The two loss curves agree to about 1e-12 (tests/test_seeds.py asserts 1e-9).
try:
    from torch_gpt.seeds import train_seed as torch_train_seed
except ImportError:
    print("\n(torch is not installed: skipping the torch half)")
else:
    _, _, t_history, t_answers = torch_train_seed("apple", seed=0)
    worst = max(abs(a - b) for a, b in zip(history.loss, t_history.loss))
    print(f"\ntorch_gpt: loss {t_history.loss[0]:.4f} -> {t_history.loss[-1]:.4f}; "
          f"largest difference from numpy over 30 epochs: {worst:.1e}")
    print("  same answers:", t_answers == answers)

# The other seed ("CNN is what <EOS>" -> "Great <EOS>") is the same problem with other words.
print("\nthe seeds:", ", ".join(f"{k}: {v['prompts'][0]!r} -> {v['answer']!r}" for k, v in SEEDS.items()))
