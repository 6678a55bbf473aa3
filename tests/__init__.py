"""numpy-gpt's test suite (a package, so that test files can share helpers)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess that must run this checkout's code, with extra set.

    ROOT goes first on PYTHONPATH: without it, `python -m numpy_gpt` and the console script import
    whatever copy is installed in the environment, which need not be this checkout (a second
    clone sharing one virtualenv, say)."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
