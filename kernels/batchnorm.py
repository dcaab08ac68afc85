"""Batch normalization over the batch axis of (N, C), with an optional fused ReLU.

Training forward (course notation, per feature):
    mu = 1/m sum_i x_i          var = 1/m sum_i (x_i - mu)^2      (biased)
    x_hat = (x - mu) * rstd,    rstd = 1 / sqrt(var + eps)
    y = gamma * x_hat + beta    (then max(y, 0) when relu)
    running <- momentum * running + (1 - momentum) * batch statistic   (in place)
Backward, with dy already masked by y > 0 when relu:
    dbeta = sum_i dy_i      dgamma = sum_i dy_i * x_hat_i
    dx = gamma * rstd * (dy - dbeta / m - x_hat * dgamma / m)
x_hat is recomputed from (x, mean, rstd), so nothing but two C-vectors is saved.
"""

import numpy as np


def forward_train(x, gamma, beta, running_mean, running_var, momentum, epsilon, relu=False):
    """Returns (y, mean, rstd) and updates running_mean, running_var in place."""
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(epsilon))
    running_mean *= momentum
    running_mean += (1.0 - momentum) * mean
    running_var *= momentum
    running_var += (1.0 - momentum) * var
    return _scale_shift(x, mean, rstd, gamma, beta, relu), mean, rstd


def forward_infer(x, gamma, beta, running_mean, running_var, epsilon, relu=False):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta."""
    rstd = 1.0 / np.sqrt(running_var + x.dtype.type(epsilon))
    return _scale_shift(x, running_mean, rstd, gamma, beta, relu)


def backward(dy, x, gamma, beta, mean, rstd, relu=False):
    """Returns (dx, dgamma, dbeta) of the training forward."""
    x_hat = (x - mean) * rstd
    if relu:
        dy = np.where(gamma * x_hat + beta > 0, dy, dy.dtype.type(0))
    m = x.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx = (gamma * rstd) * (dy - dbeta / m - x_hat * (dgamma / m))
    return dx, dgamma, dbeta


def _scale_shift(x, mean, rstd, gamma, beta, relu):
    y = (x - mean) * (rstd * gamma)
    y += beta
    if relu:
        np.maximum(y, 0, out=y)
    return y
