"""What numpy_gpt.plots and numpy_gpt.pictures draw, read back from the matplotlib figures.

The plotting functions save a PNG and close their figure. These tests keep the figure (pyplot's
close is replaced by a recorder) and look at its artists: the x and y data of each line, the
array and mask of each heatmap, the horizontal lines and the titles. The inputs are made by hand
with every number distinct, so a curve drawn from the wrong list, or shifted by one step, shows.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from numpy_gpt import pictures, plots  # noqa: E402
from numpy_gpt.train import History  # noqa: E402


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures the code under test closes, kept open for inspection (closed for real after)."""
    kept = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    for fig in kept:
        real_close(fig)


def line_labelled(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, f"expected one line labelled {label!r}, found {[l.get_label() for l in ax.get_lines()]}"
    return matches[0]


def as_floats(values):
    return [float(v) for v in values]


# ---------------------------------------------------------------------------------------------
# plot_losses
# ---------------------------------------------------------------------------------------------

def hand_made_history():
    # Training losses at steps 0..5, and two evaluations whose train and val losses all differ
    # from each other and from every training loss.
    h = History()
    h.step = [0, 1, 2, 3, 4, 5]
    h.loss = [4.10, 3.70, 3.20, 2.90, 2.60, 2.45]
    h.eval = [{"step": 2, "train_loss": 3.15, "val_loss": 3.33, "val_ppl": 27.9},
              {"step": 5, "train_loss": 2.41, "val_loss": 2.77, "val_ppl": 15.9}]
    return h


def test_plot_losses_draws_the_training_curve_and_the_validation_losses_at_their_steps(tmp_path, kept_figures):
    path = plots.plot_losses({"run": hand_made_history()}, str(tmp_path / "loss.png"), "my title")
    assert path == str(tmp_path / "loss.png")
    (fig,) = kept_figures
    (ax,) = fig.axes
    assert ax.get_title() == "my title"
    train = line_labelled(ax, "run train (batch)")
    assert as_floats(train.get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert as_floats(train.get_ydata()) == [4.10, 3.70, 3.20, 2.90, 2.60, 2.45]
    # The markers are the validation losses (not the training losses of those evaluations).
    val = line_labelled(ax, "run validation")
    assert as_floats(val.get_xdata()) == [2, 5]
    assert as_floats(val.get_ydata()) == [3.33, 2.77]


def test_plot_losses_creates_missing_folders(tmp_path, kept_figures):
    path = tmp_path / "new" / "sub" / "loss.png"
    plots.plot_losses({"run": hand_made_history()}, str(path))
    assert path.is_file()
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# plot_layer_grad_norms
# ---------------------------------------------------------------------------------------------

def grad_norm_history():
    # Steps that are not 0, 1, 2 (a curve drawn against its indices would show), and norms that
    # differ between every part, every step and the global norm.
    h = History()
    h.step = [10, 20, 30, 40]
    h.loss = [9.1, 9.2, 9.3, 9.4]
    h.grad_norm = [5.0, 4.0, 3.5, 3.25]
    h.layer_grad_norms = [{"wte": 0.11, "h.0": 1.21, "ln_f": 0.031},
                          {"wte": 0.12, "h.0": 1.22, "ln_f": 0.032},
                          {"wte": 0.13, "h.0": 1.23, "ln_f": 0.033},
                          {"wte": 0.14, "h.0": 1.24, "ln_f": 0.034}]
    return h


def test_layer_grad_norms_draws_the_global_norm_and_each_layer_at_its_steps(tmp_path, kept_figures):
    plots.plot_layer_grad_norms(grad_norm_history(), str(tmp_path / "norms.png"), "norms", clip=2.5)
    (fig,) = kept_figures
    (ax,) = fig.axes
    assert ax.get_title() == "norms"
    overall = line_labelled(ax, "all (global norm)")
    assert as_floats(overall.get_xdata()) == [10, 20, 30, 40]
    assert as_floats(overall.get_ydata()) == [5.0, 4.0, 3.5, 3.25]
    expected = {"wte": [0.11, 0.12, 0.13, 0.14], "h.0": [1.21, 1.22, 1.23, 1.24], "ln_f": [0.031, 0.032, 0.033, 0.034]}
    for name, norms in expected.items():
        line = line_labelled(ax, name)
        assert list(zip(as_floats(line.get_xdata()), as_floats(line.get_ydata()))) == list(zip([10, 20, 30, 40], norms)), name
    # The clip threshold is a horizontal line at 2.5 across the whole axes.
    clip = line_labelled(ax, "clip at 2.5")
    assert as_floats(clip.get_ydata()) == [2.5, 2.5]
    assert as_floats(clip.get_xdata()) == [0.0, 1.0]


def test_layer_grad_norms_without_clip_draws_no_threshold(tmp_path, kept_figures):
    plots.plot_layer_grad_norms(grad_norm_history(), str(tmp_path / "norms.png"))
    (fig,) = kept_figures
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert sorted(labels) == sorted(["all (global norm)", "wte", "h.0", "ln_f"])


# ---------------------------------------------------------------------------------------------
# plot_attention
# ---------------------------------------------------------------------------------------------

def heatmaps_by_title(fig):
    """{axes title: the image drawn on those axes} for every axes that shows an image."""
    return {ax.get_title(): ax.images[0] for ax in fig.axes if ax.images}


def test_plot_attention_draws_each_head_and_blanks_only_the_future(tmp_path, kept_figures):
    # Three heads of four positions; every weight distinct (head h holds h + small fractions).
    T, n_head = 4, 3
    weights = np.array([[[h + (4 * t + u + 1) / 100 for u in range(T)] for t in range(T)] for h in range(n_head)]) / 3
    plots.plot_attention(weights, ["a", "b", "c", "d"], str(tmp_path / "attn.png"), "heads")
    (fig,) = kept_figures
    assert fig._suptitle.get_text() == "heads"
    images = heatmaps_by_title(fig)
    assert sorted(images) == ["head 0", "head 1", "head 2"]
    # The blanked entries are those with key u after query t; the diagonal (u == t) is shown.
    future = np.array([[u > t for u in range(T)] for t in range(T)])
    for h in range(n_head):
        shown = images[f"head {h}"].get_array()
        np.testing.assert_array_equal(np.ma.getmaskarray(shown), future, err_msg=f"mask of head {h}")
        np.testing.assert_array_equal(np.asarray(shown.data)[~future], weights[h][~future],
                                      err_msg=f"weights of head {h}")


# ---------------------------------------------------------------------------------------------
# attention_maps against torch_gpt
# ---------------------------------------------------------------------------------------------

def test_attention_maps_match_torch(monkeypatch):
    # A 2-layer pre-LN model with random weights everywhere, layer norms included (GPT-2's
    # initial ones and zeros would make a forgotten ln_1 go unnoticed on the scale). The torch
    # model runs the same weights; its attention's q and k are recorded, and the weights
    # softmax(q k^T / sqrt(head_size)) with the causal mask are formed here from them.
    torch = pytest.importorskip("torch")
    import torch_gpt.attention as tattention
    from numpy_gpt import GPTConfig
    from tests.model_strategies import randomized, torch_twin
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, norm="pre", mlp=True)
    model = randomized(cfg, 3, np.float64)
    ids = np.array([3, 1, 4, 1, 5, 9, 2])
    T = len(ids)

    recorded = []
    real = tattention.causal_attention_forward

    def recording(q, k, v, *args, **kwargs):
        recorded.append((q.detach().clone(), k.detach().clone()))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(tattention, "causal_attention_forward", recording)
    tmodel = torch_twin(model)
    tmodel.eval()
    with torch.no_grad():
        tmodel(torch.from_numpy(ids)[None])
    assert len(recorded) == cfg.n_layer

    def torch_weights(layer):
        q, k = recorded[layer]
        s = (q @ k.transpose(-1, -2)) / cfg.head_size ** 0.5
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        return torch.softmax(s.masked_fill(future, float("-inf")), dim=-1)[0].numpy()

    last, first = torch_weights(1), torch_weights(0)
    assert not np.allclose(last, first, atol=1e-3)          # the two layers are told apart
    np.testing.assert_allclose(pictures.attention_maps(model, ids), last, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pictures.attention_maps(model, ids, layer=1), last, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pictures.attention_maps(model, ids, layer=0), first, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# make_pictures: one short run, its trainers and figures kept
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def short_pictures_run(tmp_path_factory):
    """make_pictures for 1 step with eval_batches=1 (no torch), recording every Trainer it makes,
    the eval_loss calls of each, and the figures it draws."""
    from numpy_gpt import train
    trainers, eval_calls, figures = [], {}, []
    real_init, real_eval_loss, real_close = train.Trainer.__init__, train.Trainer.eval_loss, plt.close

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        trainers.append(self)

    def counting_eval_loss(self, x, y):
        eval_calls[id(self)] = eval_calls.get(id(self), 0) + 1
        return real_eval_loss(self, x, y)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train.Trainer, "__init__", recording_init)
        mp.setattr(train.Trainer, "eval_loss", counting_eval_loss)
        mp.setattr(plt, "close", lambda fig=None: figures.append(fig))
        out_dir = tmp_path_factory.mktemp("pictures")
        result = pictures.make_pictures(str(out_dir), steps=1, progress=False, with_torch=False,
                                        eval_batches=1, out=io.StringIO())
    yield dict(result=result, trainers=trainers, eval_calls=eval_calls, figures=figures)
    for fig in figures:
        real_close(fig)


def char_trainer(run):
    """The character model's trainer: the one with validation data (the seed run has none)."""
    (trainer,) = [t for t in run["trainers"] if t.val_data is not None]
    return trainer


def figure_titled(run, fragment):
    def titles(fig):
        return [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]
    matches = [fig for fig in run["figures"] if any(fragment in t for t in titles(fig))]
    assert len(matches) == 1, f"expected one figure titled with {fragment!r}"
    return matches[0]


def test_eval_batches_sets_the_batches_of_each_evaluation(short_pictures_run):
    trainer = char_trainer(short_pictures_run)
    # One step, evaluated once at its end: one train batch and one val batch, so two calls.
    assert len(trainer.history.eval) == 1
    assert short_pictures_run["eval_calls"][id(trainer)] == 2
    assert trainer.config.eval_batches == 1


def test_grad_norm_picture_shows_the_clip_threshold(short_pictures_run):
    from numpy_gpt.demo import char_setup
    clip = char_setup(steps=1)[4].grad_clip
    assert clip > 0
    fig = figure_titled(short_pictures_run, "gradient norm per layer")
    (ax,) = fig.axes
    thresholds = [line for line in ax.get_lines() if as_floats(line.get_ydata()) == [clip, clip]
                  and as_floats(line.get_xdata()) == [0.0, 1.0]]
    assert len(thresholds) == 1, "no horizontal line at the clip value"


def test_last_layer_picture_shows_the_last_layers_attention(short_pictures_run):
    from numpy_gpt.demo import char_setup
    trainer = char_trainer(short_pictures_run)
    model, n_layer = trainer.model, trainer.model.config.n_layer
    assert n_layer >= 2
    prompt_ids = char_setup(steps=1)[0].encode(pictures.DEFAULT_PROMPT)
    last = pictures.attention_maps(model, prompt_ids, layer=n_layer - 1)
    first = pictures.attention_maps(model, prompt_ids, layer=0)
    assert not np.allclose(last, first, atol=1e-4)           # the layers are told apart
    fig = figure_titled(short_pictures_run, f"layer {n_layer - 1} (the last)")
    images = heatmaps_by_title(fig)
    assert len(images) == model.config.n_head
    for h in range(model.config.n_head):
        shown = np.ma.getdata(images[f"head {h}"].get_array())
        below = np.tril(np.ones(last.shape[1:], dtype=bool))
        np.testing.assert_allclose(shown[below], last[h][below], rtol=1e-6, err_msg=f"head {h}")
    np.testing.assert_allclose(short_pictures_run["result"]["char_attention"], last, rtol=1e-6)
