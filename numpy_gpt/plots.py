"""PNG pictures of training runs (matplotlib, imported only when a picture is drawn)."""
from __future__ import annotations

import os


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_losses(histories: dict, path: str, title: str = "training loss") -> str | None:
    """One curve per run: training loss per step, and evaluation losses as markers.

    histories: {label: History}. Returns the path written, or None without matplotlib.
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, h) in enumerate(histories.items()):
        # Later runs are drawn thin and dotted: when they match the first, both stay visible.
        style = dict(lw=1.2, alpha=0.8) if i == 0 else dict(lw=0.8, ls=":", alpha=1.0)
        line, = ax.plot(h.step, h.loss, label=f"{label} train (batch)", **style)
        ev = [e for e in h.eval if "val_loss" in e]
        if ev:
            ax.plot([e["step"] for e in ev], [e["val_loss"] for e in ev], "o--", color=line.get_color(),
                    ms=4, label=f"{label} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
