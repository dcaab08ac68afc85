"""Batch normalization over a data-parallel global batch: each process holds `rows` of its
`global_rows` rows (gpudl.collectives.Shard), and the statistics are those of the whole batch.

Forward (N = global rows): each process's (mean, M2 = sum (x - mean)^2) of its rows, gathered
(one collective) and merged in rank order by Chan's rule, the same on every process:
    n_ab = n_a + n_b,  delta = mean_b - mean_a
    mean_ab = mean_a + delta * n_b / n_ab,   M2_ab = M2_a + M2_b + delta^2 * n_a * n_b / n_ab
    var = M2 / N  (biased),   y = gamma * (x - mean) * rstd + beta,   rstd = 1 / sqrt(var + eps)
Backward: a process's dy is the gradient of its own rows' mean loss, dy = dy_global / w with
w = rows / N (the trainer weighs the parameter gradients by w before their all-reduce), so
    S_beta  = sum_r w_r sum_(i in r) dy_i        S_gamma = sum_r w_r sum_(i in r) dy_i * x_hat_i
    dx      = gamma * rstd * (dy - S_beta / rows - x_hat * S_gamma / rows)
which is the one-process formula on the global batch, in this process's scale; dgamma and
dbeta are this process's partial sums. One process (w = 1) gives the usual formulas.
"""

import numpy as np

from gpudl import collectives
from gpudl.backend import get_backend


def forward_train(x, gamma, beta, running_mean, running_var, momentum, epsilon, shard):
    """(y, mean, rstd) with the global batch's statistics; the running statistics are updated in place."""
    xp = get_backend().xp
    own = xp.zeros((1, 2, x.shape[1]), dtype=x.dtype)  # this process's (mean, M2)
    if shard.rows:
        own[0, 0] = x.mean(axis=0)
        centered = x - own[0, 0]
        own[0, 1] = (centered * centered).sum(axis=0)
    bounds = collectives.split(shard.global_rows, collectives.world_size())
    parts = collectives.all_gather_rows(own, [1] * collectives.world_size())
    count, mean, m2 = 0, parts[0, 0] * 0, parts[0, 1] * 0
    for rows, (part_mean, part_m2) in zip(np.diff(bounds).tolist(), parts):
        if rows:
            total = count + rows
            delta = part_mean - mean
            mean = mean + delta * x.dtype.type(rows / total)
            m2 = m2 + part_m2 + delta * delta * x.dtype.type(count * rows / total)
            count = total
    var = m2 / x.dtype.type(shard.global_rows)
    centered = x - mean
    rstd = 1.0 / get_backend().xp.sqrt(var + x.dtype.type(epsilon))
    running_mean *= momentum
    running_mean += (1.0 - momentum) * mean
    running_var *= momentum
    running_var += (1.0 - momentum) * var
    centered *= rstd * gamma
    centered += beta
    return centered, mean, rstd


def backward(dy, x, gamma, mean, rstd, shard):
    """(dx, dgamma, dbeta): dx of the global batch norm in this process's scale; dgamma and dbeta
    this process's sums (see the module docstring)."""
    x_hat = (x - mean) * rstd
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    weight = x.dtype.type(shard.rows / shard.global_rows)
    totals = collectives.all_reduce(get_backend().xp.stack([dbeta * weight, dgamma * weight]))
    rows = x.dtype.type(max(shard.rows, 1))
    dx = gamma * rstd * (dy - totals[0] / rows - x_hat * (totals[1] / rows))
    return dx, dgamma, dbeta
