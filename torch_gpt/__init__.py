"""torch_gpt: the PyTorch reference for numpy_gpt.

It mirrors numpy_gpt file for file with the same function names, parameter
names and shapes, but is built on torch built-ins and autograd, so it never
repeats numpy_gpt's hand derivations: that is what makes it an oracle.
"""
__version__ = "0.1.0"
