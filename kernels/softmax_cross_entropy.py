"""Softmax with cross-entropy, forward and backward fused, numerically stable.

    a = softmax(z) = exp(z - max z) / sum exp(z - max z)
    L = 1/m sum_i (logsumexp(z_i) - sum_k y_ik z_ik)      (y one-hot or soft; sum_k y_ik = 1)
    dZ = (a - Y) / m                                       (the course's A - Y)
Integer labels are the one-hot case without building Y.
"""

import numpy as np


def softmax(logits):
    """Row-wise softmax, max-subtracted."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_cross_entropy(logits, labels, dlogits=None):
    """Returns (mean loss as a float, dZ).

    labels: int array (m,) of class indices, or float array (m, C) of one-hot or
    soft targets. dlogits: where to write dZ; pass `logits` itself to overwrite
    the logits (saves a (m, C) buffer; safe because nothing reads z after this).
    """
    m = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    log_sum_exp = np.log(sum_exp)
    if labels.ndim == 1:
        rows = np.arange(m)
        row_loss = log_sum_exp[:, 0] - shifted[rows, labels]
    else:
        row_loss = ((log_sum_exp - shifted) * labels).sum(axis=1)
    loss = float(np.sum(row_loss, dtype=np.float64) / m)
    if dlogits is None:
        dlogits = np.empty_like(logits)
    np.divide(exp, sum_exp * m, out=dlogits)
    if labels.ndim == 1:
        dlogits[rows, labels] -= logits.dtype.type(1.0 / m)
    else:
        dlogits -= labels / logits.dtype.type(m)
    return loss, dlogits
