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


# ---------------------------------------------------------------------------------------------
# Pictures for the study guide (numpy-gpt pictures): attention heatmaps and gradient norms.
# ---------------------------------------------------------------------------------------------

def _save(fig, plt, path: str, dpi: int = 100) -> str:
    """Save as PNG with a 256-colour palette when Pillow is there (it comes with matplotlib):
    these pictures have few colours, and the files shrink to a third, small enough to commit."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    try:
        from PIL import Image
    except ImportError:
        return path
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)
    return path


def plot_attention(weights, tokens, path: str, title: str = "attention weights",
                   head_titles=None) -> str | None:
    """One heatmap per head: row t is query position t, column u the key it attends to.

    weights: (n_head, T, T), each row summing to 1; tokens: T tick labels. The entries
    the causal mask removed (u > t, exactly 0) are left blank, so the triangle shows.
    Returns the path written, or None without matplotlib.
    """
    plt = _pyplot()
    if plt is None:
        return None
    import numpy as np
    from matplotlib.colors import PowerNorm
    weights = np.asarray(weights)
    nh, T, _ = weights.shape
    ncols = min(nh, 2)
    nrows = -(-nh // ncols)
    side = 2.6 if T <= 8 else 3.8
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 1.6, side * nrows + 1.2), squeeze=False,
                             sharex=True, sharey=True)
    fig.subplots_adjust(left=0.16 if T <= 8 else 0.08, right=0.82, bottom=0.2 if T <= 8 else 0.1,
                        top=0.86 if nrows == 1 else 0.92, wspace=0.08, hspace=0.12)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    font = 9 if T <= 8 else 6
    image = None
    for h, ax in enumerate(axes.flat):
        if h >= nh:
            ax.axis("off")
            continue
        # a square-root colour scale: weights spread over many keys are small, and stay visible
        image = ax.imshow(np.ma.masked_where(future, weights[h]), cmap="viridis",
                          norm=PowerNorm(0.5, vmin=0.0, vmax=1.0))
        ax.set_title(head_titles[h] if head_titles else f"head {h}", fontsize=10)
        if h % ncols == 0:                                  # tick labels on the outer axes only
            ax.set_yticks(range(T))
            ax.set_yticklabels(tokens, fontsize=font)
            ax.set_ylabel("query t", fontsize=8)
        if h // ncols == nrows - 1 or h + ncols >= nh:
            ax.set_xticks(range(T))
            ax.set_xticklabels(tokens, rotation=90, fontsize=font)
            ax.set_xlabel("key u (attended to)", fontsize=8)
    fig.suptitle(title, fontsize=11)
    cax = fig.add_axes([0.85, 0.25, 0.025, 0.5])
    fig.colorbar(image, cax=cax, label="weight a[t, u] (square-root scale)")
    return _save(fig, plt, path)


def plot_layer_grad_norms(history, path: str, title: str = "gradient norm per layer",
                          clip: float | None = None) -> str | None:
    """One curve per part of the model ("wte", "h.0", "h.1", "ln_f", ...): the L2 norm of all its
    parameters' gradients at each step, on a log scale, before clipping.

    The trainer records History.layer_grad_norms and History.grad_norm (the global norm) both
    before clipping. clip: draw the clipping threshold of the global norm as a dashed line.
    """
    plt = _pyplot()
    if plt is None:
        return None
    records = history.layer_grad_norms
    names = list(records[0]) if records else []
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history.step, history.grad_norm, color="0.6", lw=0.8, label="all (global norm)")
    for name in names:
        ax.plot(history.step, [r[name] for r in records], lw=1.0, label=name)
    if clip:
        ax.axhline(clip, color="k", ls="--", lw=0.8, label=f"clip at {clip:g}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||gradient|| (L2, before clipping)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return _save(fig, plt, path)
