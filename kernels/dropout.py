"""Inverted dropout with a counter-based Philox4x32-10 mask.

    keep_i = philox_word_i(seed) >= round(rate * 2**32)
    y_i    = x_i * keep_i * (1 / (1 - rate))          (course: keep_prob = 1 - rate)

Element i of the flattened array takes word ``i % 4`` of Philox4x32-10 at
counter ``(i // 4) mod 2**32, (i // 4) >> 32, 0, 0`` under the 64-bit key
``seed`` (low word k0, high word k1): exactly what Triton's
``tl.randint4x(seed, i // 4)`` returns, so every backend draws the same mask.
The comparison is on integers, so no floating-point rounding enters the mask.
The backward pass is the same function applied to dy with the same seed: the
mask is regenerated, never stored.
"""

import numpy as np

PHILOX_ROUND_A = np.uint64(0xD2511F53)
PHILOX_ROUND_B = np.uint64(0xCD9E8D57)
PHILOX_KEY_A = 0x9E3779B9
PHILOX_KEY_B = 0xBB67AE85
PHILOX_ROUNDS = 10
LOW32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)


def philox4x32_10(c0, c1, c2, c3, seed):
    """Philox4x32-10 (Random123) of uint32 counter arrays under a 64-bit key.

    Each round:  c0, c1, c2, c3 <- hi(B*c2) ^ c1 ^ k0, lo(B*c2), hi(A*c0) ^ c3 ^ k1, lo(A*c0)
                 k0, k1 <- k0 + 0x9E3779B9, k1 + 0xBB67AE85   (mod 2**32)
    Returns four uint32 arrays.
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3))
    k0, k1 = int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF
    for _ in range(PHILOX_ROUNDS):
        product_a = c0.astype(np.uint64) * PHILOX_ROUND_A
        product_b = c2.astype(np.uint64) * PHILOX_ROUND_B
        c0 = (product_b >> SHIFT32).astype(np.uint32) ^ c1 ^ np.uint32(k0)
        c2 = (product_a >> SHIFT32).astype(np.uint32) ^ c3 ^ np.uint32(k1)
        c1 = product_b.astype(np.uint32)
        c3 = product_a.astype(np.uint32)
        k0 = (k0 + PHILOX_KEY_A) & 0xFFFFFFFF
        k1 = (k1 + PHILOX_KEY_B) & 0xFFFFFFFF
    return c0, c1, c2, c3


def keep_threshold(rate):
    """The integer threshold round(rate * 2**32), clamped to a uint32."""
    return min(int(round(float(rate) * 2.0**32)), 0xFFFFFFFF)


def random_words(n, seed):
    """The first n Philox words of `seed`, word i from counter i // 4, lane i % 4."""
    counters = np.arange((n + 3) // 4, dtype=np.uint64)
    c0 = (counters & LOW32).astype(np.uint32)
    c1 = (counters >> SHIFT32).astype(np.uint32)
    zeros = np.zeros_like(c0)
    lanes = philox4x32_10(c0, c1, zeros, zeros, seed)
    return np.stack(lanes, axis=1).reshape(-1)[:n]


def keep_mask(shape, rate, seed):
    """Boolean keep mask of `shape`: True where the element survives dropout."""
    n = int(np.prod(shape))
    return (random_words(n, seed) >= np.uint32(keep_threshold(rate))).reshape(shape)


def dropout(x, rate, seed):
    """y = x * keep_mask * (1 / (1 - rate)); also the backward pass (pass dy)."""
    if rate == 0.0:
        return x.copy()
    scale = x.dtype.type(1.0 / (1.0 - rate))  # host-computed once, then multiplied
    return np.where(keep_mask(x.shape, rate, seed), x * scale, x.dtype.type(0))
