"""Step 2: every number of one forward and one backward pass of the seed model, beside torch's.

This is `numpy-gpt trace --trained --epochs 10` (see `numpy-gpt trace --help`), then three
of its numbers redone by hand, the way you would check them with pencil and paper. After
10 of the 30 epochs the attention has started to pick keys but is not yet one-hot, so the
numbers are worth checking; the fully trained model (--trained alone) is nearly saturated.

    .venv/bin/python examples/02_trace.py
Next: examples/03_check_your_backward.py.
"""
import math

import numpy as np

from numpy_gpt import trace

result = trace.run(trained=True, epochs=10)          # prints the whole trace; torch beside it if installed
v = {s.key: s.value[0] if s.value.ndim == 3 else s.value for s in result["steps"]}   # drop B = 1

print("\n==== three numbers by hand " + "=" * 40)
# 1. A row of the positional table: position 3, C = 2, so PE(3) = (sin 3, cos 3).
print(f"PE row t=3: (sin 3, cos 3) = ({math.sin(3):.4g}, {math.cos(3):.4g});  traced {v['pe'][3].round(4)}")

# 2. A row of attention weights: softmax over the scores query t=3 may see (keys 0 to 3).
s = v["s"][3, :4]
e = [math.exp(z - max(s)) for z in s]
by_hand = [z / sum(e) for z in e]
print(f"a[t=3] = softmax({np.round(s, 4)}) = {np.round(by_hand, 4)};  traced {v['a'][3, :4].round(4)}")

# 3. A row of dlogits: (softmax - onehot(target)) / M, with M = 5 targets.
t, target = 0, result["targets"][0, 0]
row = v["probs"][t].copy()
row[target] -= 1.0
print(f"dlogits[t=0] = (p - onehot({target})) / 5 = {np.round(row / 5, 4)};  traced {v['dlogits'][t].round(4)}")
