"""Batch normalization over a data-parallel global batch: each process holds `rows` of its
`global_rows` rows (gpudl.collectives.Shard), and the statistics are those of the whole batch.

Forward (N = global rows; sums over the global batch are partial sums all-reduced):
    mu  = (sum_i x_i) / N                var = (sum_i (x_i - mu)^2) / N      (biased, two passes)
    y   = gamma * (x - mu) * rstd + beta,   rstd = 1 / sqrt(var + eps)
Backward: a process's dy is the gradient of its own rows' mean loss, dy = dy_global / w with
w = rows / N (the trainer weighs the parameter gradients by w before their all-reduce), so
    S_beta  = sum_r w_r sum_(i in r) dy_i        S_gamma = sum_r w_r sum_(i in r) dy_i * x_hat_i
    dx      = gamma * rstd * (dy - S_beta / rows - x_hat * S_gamma / rows)
which is the one-process formula on the global batch, in this process's scale; dgamma and
dbeta are this process's partial sums. One process (w = 1) gives the usual formulas.
"""

from gpudl import collectives
from gpudl.backend import get_backend


def forward_train(x, gamma, beta, running_mean, running_var, momentum, epsilon, shard):
    """(y, mean, rstd) with the global batch's statistics; the running statistics are updated in place."""
    count = x.dtype.type(shard.global_rows)
    mean = collectives.all_reduce(x.sum(axis=0)) / count
    centered = x - mean
    var = collectives.all_reduce((centered * centered).sum(axis=0)) / count
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
