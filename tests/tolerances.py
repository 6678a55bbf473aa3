"""Every tolerance the suite uses, in one place, with the reason for each.

Errors are measured by rel_error (numpy_gpt.gradcheck): the largest absolute
difference over the largest magnitude of either tensor. Being relative to the
whole tensor, it does not blow up on entries that happen to be near zero.
"""
import numpy as np

# numpy_gpt against torch autograd, same dtype on both sides.
PARITY = {
    # float64 has a unit roundoff of 1.1e-16. Two different but correct orders
    # of summation over a few thousand terms differ by at most ~1e-13 relative;
    # 1e-10 leaves room for cancellation yet fails any wrong formula, whose
    # error is of order 1.
    np.dtype(np.float64): 1e-10,
    # float32 has a unit roundoff of 6e-8; reductions over up to ~1e4 terms and
    # exp/log of large arguments lose two to three digits, hence 1e-4.
    np.dtype(np.float32): 1e-4,
}

# A tensor can be exactly zero in real arithmetic (dq and dk when a query sees a
# single key; dx of layer norm over one channel) and come out of torch as rounding
# noise. Relative to itself that noise is an error of 1, so every tensor's scale is
# floored at SCALE_FLOOR times the largest array of the same call: inputs, upstream
# gradient, output and gradients. Something a thousand times smaller than the problem
# it came from is judged in absolute terms at that scale, while a wrong formula, off
# by its own magnitude, still fails on the ordinary examples. The inputs belong to
# the scale because a whole computation can sit in an ill-conditioned regime, every
# output and gradient tiny and each carrying relative rounding far above eps, in torch
# as in numpy: a single GELU unit deep in its tail (1 + tanh(u) cancels), or a
# saturated cross-entropy whose loss of 3e-4 is the difference of logits near 30.
#
# The floor depends on the dtype because tol * floor is the smallest error, as a
# fraction of the problem's scale, that still counts: in float64, 1e-10 * 1e-3 =
# 1e-13, about 900 units in the last place (ulps) of a number at that scale. In float32 the same
# 1e-3 would give 1e-4 * 1e-3 = 1e-7, less than one float32 ulp (1.2e-7) of it, and a
# gradient that adds up a few dozen terms of the problem's size which cancel to
# something small carries more rounding than that in any float32 code, torch's
# included (a bias gradient of -0.00295, the sum of 18 terms of up to 2.7, was off by
# 1.2e-6 in numpy and 4e-8 in torch; adding up 18.3 in float32 rounds by about 1.1e-6). 1e-2 judges such tensors at 1e-6 of the scale, about
# 8 float32 ulps. Formulas are the same in both dtypes, and float64 checks them at 1e-13.
SCALE_FLOOR = {np.dtype(np.float64): 1e-3, np.dtype(np.float32): 1e-2}

# Where float32 itself cannot resolve a result (the answer is a small difference of
# large terms, e.g. layer norm over two channels, whose dx exists only through
# eps), neither side can reach 1e-4. Then torch is also run in float64 as the
# ground truth, and numpy_gpt passes if its error against that truth is at most
# AS_ACCURATE_AS_TORCH times torch float32's own: as good as the reference,
# judged by the exact answer. A wrong formula is off by order 1 and still fails.
AS_ACCURATE_AS_TORCH = 4.0
# ...and at most TRUTH_CAP from the truth whatever torch float32's error: a wrong formula is off
# by order 1, so a loose reference must not carry a result that far off through the rule above.
TRUTH_CAP = 1e-2

# Whole-model parity: many layers deep, errors compound a little further.
MODEL_PARITY = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}

# Central finite differences in float64 with step h = 1e-6: the truncation error
# is O(h^2) ~ 1e-12 and the rounding error ~ 1e-16 * |L| / h ~ 1e-10 * |L|, so a
# correct backward agrees to about 1e-8 relative; a wrong one is off by order 1.
FD_STEP = 1e-6
FD = 1e-6
# Where the forward rounds far worse than eps * |out| (1 + tanh(u) deep in GELU's tail
# cancels to ~1e-8, so out carries ~1e-8 relative error and h = 1e-6 turns it into ~1e-4 on the
# gradient), these larger steps are tried too and the best agreement kept (gradcheck.py).
FD_FALLBACK_STEPS = (1e-4, 1e-5)


def parity_tol(dtype) -> float:
    return PARITY[np.dtype(dtype)]


def scale_floor(dtype) -> float:
    return SCALE_FLOOR[np.dtype(dtype)]


# Beyond layer parity: the same computation done two ways inside numpy_gpt, or a whole run.

# The same sums added in another order (an embedding gradient against a loop over positions,
# scatter_add_rows against np.add.at, a gradient added into an array in place or afterwards):
# a few ulps of the largest term per addition.
SUMMATION_ORDER = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

# Logits from the KV cache (one position at a time, cached keys and values) against a full
# forward over the whole sequence: the same products, blocked and added in another order.
KV_CACHE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

# Two beam-search results, or beam widths, whose scores (float64 sums of a few log-probabilities)
# differ by less than this are a true tie: torch's log-softmax may round one ulp the other way.
BEAM_TIE = 1e-12

# A probability mass (float64 sum of softmax weights) compared with a threshold, to rounding.
PROB_MASS = 1e-12

# Sampling 4000 draws from (0.1, 0.6, 0.3): each frequency's standard deviation is at most
# sqrt(0.25 / 4000) = 0.008, so 0.03 is about four of them, a false alarm about once in 15,000 runs.
SAMPLING_FREQUENCY = 0.03

# Data-parallel training (threads or worker processes) against one thread, float64: the batch's
# gradients are summed per shard, then across shards; the losses differ by a few ulps, parameters
# after AdamW's division by sqrt(v) by a little more, and entries that are ~0 in absolute terms.
SHARDED_LOSS = 1e-13
SHARDED_PARAMS_THREADS = dict(rtol=1e-11, atol=1e-14)
SHARDED_PARAMS_PROCESSES = dict(rtol=1e-10, atol=1e-15)

# numpy_gpt's training loop against torch.optim's in float64, over up to 50 steps: each step's
# rounding differences pass through the optimizer into the next, so a little looser than a single
# model's MODEL_PARITY; the learning rate schedule is the same Python float arithmetic on both sides.
TRAJECTORY = 1e-9
LR_SCHEDULE = 1e-12
