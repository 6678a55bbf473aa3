"""The two seed problems, in both implementations: same trajectory, right answers."""
import numpy as np
import pytest

from numpy_gpt.seeds import SEEDS, train_seed
from tests.parity import assert_close
from torch_gpt.seeds import train_seed as torch_train_seed


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_both_implementations_learn_the_answer(name):
    model, tok, history, answers = train_seed(name)
    tmodel, _, thistory, tanswers = torch_train_seed(name)
    expected = SEEDS[name]["answer"]
    assert answers == {p: expected for p in SEEDS[name]["prompts"]}
    assert tanswers == answers
    assert len(history.loss) == 30 and history.loss[-1] < history.loss[0] / 3
    assert_close(f"seed[{name}]", "losses", np.array(history.loss), np.array(thistory.loss), 1e-9)
    assert model.config.n_embd == 2 and model.config.n_head == 1


@pytest.mark.parametrize("seed", range(5))
def test_the_answer_does_not_hinge_on_one_lucky_init(seed):
    _, _, _, answers = train_seed("apple", seed=seed)
    assert set(answers.values()) == {"healthy <EOS>"}


def test_the_seed_training_is_adam_with_torch_s_default_betas():
    # Both implementations read this one function, so a parity test cannot see a change to it;
    # the seeds follow the textbook run: Adam, lr 0.1, torch's default betas, nothing else.
    import torch
    from numpy_gpt.seeds import seed_train_config
    c = seed_train_config()
    defaults = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]).defaults
    assert (c.optimizer, c.lr, c.schedule, c.grad_clip, c.weight_decay) == ("adam", 0.1, "constant", 0.0, 0.0)
    assert tuple(c.betas) == tuple(defaults["betas"])


def test_the_seed_argument_picks_the_initial_weights_in_both_implementations():
    # torch_gpt loads init_params(seed) itself, so the first loss (before any update) of the two
    # agrees at seed 3 only if numpy_gpt also starts from seed 3; seed 0 starts elsewhere.
    _, _, h3, _ = train_seed("apple", seed=3, epochs=1)
    _, _, t3, _ = torch_train_seed("apple", seed=3, epochs=1)
    _, _, h0, _ = train_seed("apple", seed=0, epochs=1)
    assert h3.loss[0] == pytest.approx(t3.loss[0], rel=1e-12, abs=0)
    assert abs(h3.loss[0] - h0.loss[0]) > 1e-3


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_epochs_is_the_number_of_training_steps(impl):
    # One full-batch step per epoch (seed_train_config's contract): 3 epochs, 3 recorded losses.
    # Counted against the number asked, as both implementations share the config function.
    fn = train_seed if impl == "numpy" else torch_train_seed
    _, _, history, _ = fn("cnn", seed=0, epochs=3)
    assert len(history.loss) == 3
