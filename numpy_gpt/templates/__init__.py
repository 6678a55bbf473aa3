"""Starter files for `numpy-gpt check`: one per layer, named after the backward to write.

Each holds the backward's signature, the layout of the cache that numpy_gpt's own
forward hands it, the math to implement as comments, and `raise NotImplementedError`
where the body goes. Get one with

    numpy-gpt check layernorm --template > my_layernorm.py

fill it in, and grade it with `numpy-gpt check layernorm --impl my_layernorm.py`.
(numpy-gpt check --list names every layer.) Nothing here is imported by numpy_gpt.
"""
