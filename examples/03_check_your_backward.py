"""Step 3: write a backward yourself and let `numpy-gpt check` grade it.

This example writes a layer-norm backward with a classic bug into a temporary file: it
forgets the `- mean(g)` term (the path through the mean, see docs/layernorm.md). The
checker runs it against torch autograd and finite differences on hypothesis-drawn
shapes and names the wrong gradient, the worst entry, and the smallest failing case.
Then it fixes the bug and checks again.

Your own turn:
    numpy-gpt check --list
    numpy-gpt check layernorm --template > my_layernorm.py     # fill in the body
    numpy-gpt check layernorm --impl my_layernorm.py

    .venv/bin/python examples/03_check_your_backward.py
Next: examples/04_char_model.py.
"""
import os
import tempfile

from numpy_gpt import check

BUGGY = '''
import numpy as np

def layernorm_backward(dout, cache):
    xhat, rstd, w, has_bias = cache
    C = xhat.shape[-1]
    db = dout.reshape(-1, C).sum(axis=0) if has_bias else None
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)
    g = dout * w
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))   # BUG: no - mean(g)
    return dx, dw, db
'''
FIXED = BUGGY.replace("rstd * (g - xhat", "rstd * (g - g.mean(axis=-1, keepdims=True) - xhat").replace(
    "   # BUG: no - mean(g)", "")

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "my_layernorm.py")
    for label, source in (("with the bug", BUGGY), ("fixed", FIXED)):
        with open(path, "w") as f:
            f.write(source)
        print(f"\n######## {label}: numpy-gpt check layernorm --impl {path} --examples 20\n")
        code = check.main(["layernorm", "--impl", path, "--examples", "20"])
        print(f"\n(exit code {code})")
