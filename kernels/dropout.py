"""Inverted dropout with a counter-based Philox4x32-10 mask.

    keep_i = philox_word_i(seed) >= round(rate * 2**32)
    y_i    = x_i * keep_i * (1 / (1 - rate))          (course: keep_prob = 1 - rate)

Element i of the flattened array takes word ``i % 4`` of Philox4x32-10 at
counter ``(i // 4) mod 2**32, (i // 4) >> 32, 0, 0`` under the 64-bit key
``seed`` (low word k0, high word k1): exactly what Triton's
``tl.randint4x(seed, i // 4)`` returns, so every backend draws the same mask.
The comparison is on integers, so no floating-point rounding enters the mask.
The backward pass applies the same mask to dy. The GPU kernels regenerate it from
the key (the backward is the same kernel applied to dy: no mask memory); the NumPy
reference keeps the forward's boolean mask for its backward (`dropout_train`,
`dropout_backward`), since Philox in NumPy costs far more than a byte per element.

With ``seed_counter`` (an int64 device array ``[index, call]``) the key of the
mask is derived on the device from ``seed``, by one more Philox call:

    key = c0 | c1 << 32,  (c0, c1, _, _) = Philox4x32-10(index, call, 0, 0; seed)

The counter lives in device memory, so a captured CUDA graph draws a fresh mask at each replay once the caller has
advanced ``call`` on the device.

With ``offset`` (every op, every backend) the array is elements [offset, offset + size)
of a larger one: element i draws as element offset + i, so a data-parallel process's rows
[a, b) of the global batch get exactly rows [a, b) of the global mask (offset = a * row size).
"""

import numpy as np

from gpudl import threads

PHILOX_ROUND_A = 0xD2511F53
PHILOX_ROUND_B = 0xCD9E8D57
PHILOX_MULTIPLIERS = np.array([[PHILOX_ROUND_A], [PHILOX_ROUND_B]], dtype=np.uint64)  # for the rows (c0, c2)
PHILOX_KEY_A = 0x9E3779B9
PHILOX_KEY_B = 0xBB67AE85
PHILOX_KEY_STEPS = np.array([[PHILOX_KEY_A], [PHILOX_KEY_B]], dtype=np.uint32)
PHILOX_ROUNDS = 10
PHILOX_GRAIN = 1 << 16  # counters per thread below which one thread draws them all: a round is
# five short NumPy calls, and on smaller parts the threads spend more time handing the GIL
# to each other than they save (measured: 0.93 ms on 2 threads against 0.41 ms on 1, 128x512)
SHIFT32 = np.uint64(32)


def _philox_rounds(x, y, seed):
    """Philox4x32-10 in place over the stacked state x = (c0, c2), y = (c1, c3), uint32
    arrays of shape (2, n). The two multiplications of a round are one uint64 product
    of the stacked rows, so a round is five NumPy calls:
        product = (A*c0, B*c2)                                         (exact in uint64)
        x <- hi(product)[::-1] ^ y ^ (k0, k1) = (hi(B*c2) ^ c1 ^ k0, hi(A*c0) ^ c3 ^ k1)
        y <- lo(product)[::-1]                 = (lo(B*c2), lo(A*c0))
        k0, k1 <- k0 + 0x9E3779B9, k1 + 0xBB67AE85   (mod 2**32)
    """
    product = np.empty(x.shape, np.uint64)
    high = np.empty_like(x)
    key = np.array([[seed & 0xFFFFFFFF], [(seed >> 32) & 0xFFFFFFFF]], dtype=np.uint32)
    for _ in range(PHILOX_ROUNDS):
        np.multiply(x, PHILOX_MULTIPLIERS, out=product)
        np.right_shift(product, SHIFT32, out=high, casting="unsafe")
        np.bitwise_xor(high[::-1], y, out=x)
        x ^= key
        np.copyto(y[::-1], product, casting="unsafe")  # uint64 -> uint32 keeps the low word
        key += PHILOX_KEY_STEPS  # uint32 arrays wrap mod 2**32


def philox4x32_10(c0, c1, c2, c3, seed):
    """Philox4x32-10 (Random123) of uint32 counter arrays under a 64-bit key.

    Each round:  c0, c1, c2, c3 <- hi(B*c2) ^ c1 ^ k0, lo(B*c2), hi(A*c0) ^ c3 ^ k1, lo(A*c0)
                 k0, k1 <- k0 + 0x9E3779B9, k1 + 0xBB67AE85   (mod 2**32)
    Returns four uint32 arrays of the broadcast shape of the counters.
    """
    c0, c1, c2, c3 = np.broadcast_arrays(*(np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3)))
    x = np.stack([c0.ravel(), c2.ravel()])
    y = np.stack([c1.ravel(), c3.ravel()])
    _philox_rounds(x, y, int(seed))
    return tuple(word.reshape(c0.shape) for word in (x[0], y[0], x[1], y[1]))


def keep_threshold(rate):
    """The integer threshold round(rate * 2**32), clamped to a uint32."""
    return min(int(round(float(rate) * 2.0**32)), 0xFFFFFFFF)


def _philox_lanes(n, seed, write_lane, dtype, first_counter=0):
    """An (ceil(n / 4), 4) array whose row c holds write_lane(word, out) of the four
    Philox words of counter first_counter + c (counter c = (c mod 2**32, c >> 32, 0, 0));
    the counters are split across threads, each drawing its own range."""
    lanes = np.empty(((n + 3) // 4, 4), dtype)

    def draw(start, stop):
        counters = np.arange(first_counter + start, first_counter + stop, dtype=np.uint64)
        x = np.zeros((2, stop - start), np.uint32)
        y = np.zeros_like(x)
        np.copyto(x[0], counters, casting="unsafe")  # c0: the low word
        np.right_shift(counters, SHIFT32, out=y[0], casting="unsafe")  # c1: the high word
        _philox_rounds(x, y, seed)
        for lane, word in enumerate((x[0], y[0], x[1], y[1])):
            write_lane(word, lanes[start:stop, lane])

    threads.parallel_for(draw, len(lanes), grain=PHILOX_GRAIN)
    return lanes.reshape(-1)[:n]


def random_words(n, seed):
    """The first n Philox words of `seed`, word i from counter i // 4, lane i % 4."""
    return _philox_lanes(n, int(seed), lambda word, out: np.copyto(out, word), np.uint32)


def derived_key(seed, seed_counter):
    """The key of one dropout call: c0 | c1 << 32 of Philox4x32-10 at counter
    (index, call, 0, 0) under `seed`, for seed_counter = [index, call] (low 32 bits each)."""
    # one counter: the rounds of _philox_rounds on Python ints (NumPy calls on one element
    # cost ~50 microseconds per dropout call; these ~5)
    c0, c1 = (int(word) & 0xFFFFFFFF for word in seed_counter)
    c2 = c3 = 0
    k0, k1 = int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF
    for _ in range(PHILOX_ROUNDS):
        a, b = PHILOX_ROUND_A * c0, PHILOX_ROUND_B * c2
        c0, c1, c2, c3 = (b >> 32) ^ c1 ^ k0, b & 0xFFFFFFFF, (a >> 32) ^ c3 ^ k1, a & 0xFFFFFFFF
        k0, k1 = (k0 + PHILOX_KEY_A) & 0xFFFFFFFF, (k1 + PHILOX_KEY_B) & 0xFFFFFFFF
    return c0 | (c1 << 32)


def keep_mask(shape, rate, seed, seed_counter=None, offset=0):
    """Boolean keep mask of `shape`: True where the element survives dropout. The key is
    `seed`, or derived_key(seed, seed_counter) when the counter is given. With `offset`, the
    mask is elements [offset, offset + size) of a larger array's (a data-parallel process's
    rows of the global batch: offset = first row * row size)."""
    key = int(seed) if seed_counter is None else derived_key(seed, seed_counter)
    threshold = np.uint32(keep_threshold(rate))
    n = int(np.prod(shape))
    lead = int(offset) % 4  # elements of the first counter that come before ours
    keep = _philox_lanes(n + lead, key, lambda word, out: np.greater_equal(word, threshold, out=out), bool,
                         first_counter=int(offset) // 4)
    return keep[lead:].reshape(shape)


def apply_mask(x, keep, rate):
    """x * keep * (1 / (1 - rate)) with the scale computed once on the host: the kept
    elements are x * scale and the dropped ones +0 exactly (also where x is inf or NaN),
    as np.where(keep, x * scale, 0) gives, in two passes: the product, then its bits
    multiplied by the 0/1 mask as unsigned integers."""
    y = np.multiply(x, x.dtype.type(1.0 / (1.0 - rate)), out=np.empty_like(x))  # an array, even 0-d
    bits = y.view(f"u{y.dtype.itemsize}")
    np.multiply(bits, keep, out=bits)
    return y


def dropout(x, rate, seed, seed_counter=None, offset=0):
    """y = x * keep_mask * (1 / (1 - rate)); also the backward pass (pass dy)."""
    if rate == 0.0:
        return x.copy()
    return apply_mask(x, keep_mask(x.shape, rate, seed, seed_counter, offset), rate)


def dropout_train(x, rate, seed, seed_counter=None, offset=0):
    """The training forward: (y, keep) with y = dropout(x, ...) and keep its boolean mask,
    which dropout_backward applies to dy (1 byte per element instead of Philox again).
    `offset`: x is elements [offset, offset + x.size) of a larger array (see keep_mask)."""
    keep = keep_mask(x.shape, rate, seed, seed_counter, offset)
    return apply_mask(x, keep, rate), keep


def dropout_backward(dy, keep, rate, seed, seed_counter=None, offset=0):
    """dx = dy * keep * (1 / (1 - rate)) with the mask that dropout_train returned (the
    key arguments are those of the forward; the GPU kernels redraw the mask from them)."""
    return apply_mask(dy, keep, rate)


def dropout_relu(x, rate, seed, seed_counter=None, offset=0):
    """Fused y = dropout(relu(x)) = x * (x > 0) * keep_mask * (1 / (1 - rate))."""
    return apply_mask(x, keep_mask(x.shape, rate, seed, seed_counter, offset) & (x > 0), rate)


def dropout_relu_backward(dy, x, rate, seed, seed_counter=None, offset=0):
    """Backward of dropout_relu: dx = dy * (x > 0) * keep_mask * (1 / (1 - rate))."""
    return apply_mask(dy, keep_mask(dy.shape, rate, seed, seed_counter, offset) & (x > 0), rate)


def normalize_dropout_relu(x, mean, rstd, gamma, beta, rate, seed, seed_counter=None, offset=0):
    """Batch-norm's apply pass with its ReLU and dropout, in one pass over (N, C):
        z = (x - mean) * (rstd * gamma) + beta       (per column, as batchnorm normalizes)
        y = dropout_relu(z) = z * (z > 0) * keep_mask * (1 / (1 - rate))
    Every y > 0 is a kept, positive z: the backward's gate is y > 0 (no mask, no Philox)."""
    z = np.subtract(x, mean)  # batchnorm.normalize's operations (batchnorm imports this module)
    z *= rstd * gamma
    z += beta
    return dropout_relu(z, rate, seed, seed_counter, offset)


# ---------------------------------------------------------------------------
# Triton
#
# One program per BLOCK Philox counters = 4 * BLOCK elements: the counter c yields
# four words (r0, r1, r2, r3) = tl.randint4x(seed, c), and element 4c + lane takes
# word `lane`, so one Philox call serves four neighbouring elements. The tile is
# (BLOCK, 4) with the lane axis fastest: a contiguous run of 4 * BLOCK elements.
# The same kernel is the backward (src = dy); with RELU_GATE the keep mask is also
# gated by x > 0 (gate = x): y = dropout(relu(x)) forward, dy masked backward. With
# NORMALIZE, src is first batch-normalized per column (i % C) and the gate is that. With
# DERIVE_KEY every program first derives the key from the device seed counter (one
# scalar Philox call, negligible next to BLOCK of them). With an element `offset` the
# counters start at offset // 4 and element i of the array is element i + offset % 4 of
# that run (the first counter's lanes before ours are masked off, like those past n).
# ---------------------------------------------------------------------------

from gpudl.kernels import _triton_util as _util  # noqa: E402

triton, tl = _util.triton, _util.tl

if triton is not None:

    @triton.jit(do_not_specialize=["seed", "threshold", "offset"])
    def _dropout_kernel(src_ptr, gate_ptr, out_ptr, seed_counter_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr, n, C,
                        seed: tl.uint64, threshold: tl.uint32, scale: tl.float64, offset: tl.int64,
                        RELU_GATE: tl.constexpr, DERIVE_KEY: tl.constexpr, NORMALIZE: tl.constexpr,
                        BLOCK: tl.constexpr):
        key = seed
        if DERIVE_KEY:  # key = c0 | c1 << 32 of Philox at (index, call, 0, 0) under seed
            index = tl.load(seed_counter_ptr).to(tl.uint32)
            call = tl.load(seed_counter_ptr + 1).to(tl.uint32)
            zero = index * 0
            c0, c1, _, _ = tl.philox(seed, index, call, zero, zero)
            key = c0.to(tl.uint64) | (c1.to(tl.uint64) << 32)
        counters = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # from offset // 4 on
        r0, r1, r2, r3 = tl.randint4x(key, offset // 4 + counters)
        lane = tl.arange(0, 4)[None, :]
        word = tl.where(lane == 0, r0[:, None],
                        tl.where(lane == 1, r1[:, None], tl.where(lane == 2, r2[:, None], r3[:, None])))
        offsets = counters[:, None] * 4 + lane - offset % 4  # our element of each word (< 0: before ours)
        mask = (offsets >= 0) & (offsets < n)
        src = tl.load(src_ptr + offsets, mask=mask, other=0.0)
        keep = word >= tl.full((), threshold, tl.uint32)  # unsigned integer compare
        if NORMALIZE:  # batch-norm's apply of column offsets % C first, then the ReLU gate on it
            cols = offsets % C
            scale_c = tl.load(rstd_ptr + cols, mask=mask, other=0.0) * tl.load(gamma_ptr + cols, mask=mask, other=0.0)
            src = (src - tl.load(mean_ptr + cols, mask=mask, other=0.0)) * scale_c + tl.load(beta_ptr + cols, mask=mask,
                                                                                            other=0.0)
            keep = keep & (src > 0)
        elif RELU_GATE:
            keep = keep & (tl.load(gate_ptr + offsets, mask=mask, other=0.0) > 0)
        out = tl.where(keep, src * tl.full((), scale, src.dtype), 0.0)
        tl.store(out_ptr + offsets, out, mask=mask)


def _check(where, device, rate, seed, seed_counter, offset, arrays):
    counter = {} if seed_counter is None else {"seed_counter": seed_counter}
    _util.check_arrays(where, {**arrays, **counter}, device)
    _util.check_float_dtype(where, arrays)
    if seed_counter is not None:
        _util.check_counter(where, "seed_counter", seed_counter, 2)
    shapes = {tuple(a.shape) for a in arrays.values()}
    if len(shapes) > 1:
        raise ValueError(f"{where}: all arrays must have one shape; received "
                         + ", ".join(f"{name}.shape={a.shape}" for name, a in arrays.items()) + ".")
    if isinstance(rate, bool) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{where}: Invalid value received for argument `rate`. "
                         f"Expected a float in [0, 1). Received: rate={rate!r}")
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= int(seed) < 2**64:
        raise ValueError(f"{where}: Invalid value received for argument `seed`. "
                         f"Expected an integer in [0, 2**64). Received: seed={seed!r}")
    if isinstance(offset, bool) or int(offset) != offset or not 0 <= int(offset) < 2**62:
        raise ValueError(f"{where}: Invalid value received for argument `offset`. "
                         f"Expected an integer in [0, 2**62) (the array's first element in a larger one). "
                         f"Received: offset={offset!r}")


WARPS = 8  # 4 (float32) or 2 (float64) Philox calls per thread: 36 to 88 registers


def _triton_block(dtype, normalize=False):
    """Counters per program: 16 KiB of data (1024 counters = 4096 float32, 512 = 2048
    float64): long contiguous runs and enough bytes in flight; Philox (10 rounds of integer
    math per 4 elements) stays hidden under the memory traffic. (4096 float64 took up to
    184 registers: the compile check.) NORMALIZE also gathers four column vectors per element:
    half the counters (1024 float32 spilled 8 B on sm_80). The interpreter takes smaller programs
    (unless GPUDL_GPU_SIZES=1)."""
    if _util.interpreter_sizes():
        return 256
    return 4096 // np.dtype(dtype).itemsize // (2 if normalize else 1)


def triton_specializations():
    """Every specialization the Triton launchers can launch (the compile check's table)."""
    for dtype in _util.FLOAT_DTYPES:
        for relu_gate, normalize in ((False, False), (True, False), (True, True)):
            for derive_key in (False, True):
                yield _util.triton_spec(_dropout_kernel, dtype, dict(RELU_GATE=relu_gate, DERIVE_KEY=derive_key,
                                                                     NORMALIZE=normalize,
                                                                     BLOCK=_triton_block(dtype, normalize)),
                                        WARPS, seed_counter_ptr="*i64")


def _launch_triton(src, gate, rate, seed, seed_counter, offset, columns=None):
    """columns: None, or (mean, rstd, gamma, beta) of batch-norm's apply to run first (NORMALIZE)."""
    out = _util.xp_of(src).empty_like(src)
    n = src.size
    if n == 0:
        return out
    BLOCK = _triton_block(src.dtype, columns is not None)
    scale = float(src.dtype.type(1.0 / (1.0 - rate)))  # host-computed, then multiplied
    t = _util.as_triton
    mean, rstd, gamma, beta = (t(c) for c in columns) if columns is not None else (t(src),) * 4  # unread unless NORMALIZE
    with _util.launch_stream(src):
        _dropout_kernel[(_util.cdiv(offset % 4 + n, 4 * BLOCK),)](
            t(src), t(gate if gate is not None else src), t(out), t(seed_counter if seed_counter is not None else src),
            mean, rstd, gamma, beta, n, src.shape[-1] if src.ndim else 1, int(seed), keep_threshold(rate), scale,
            int(offset), RELU_GATE=gate is not None or columns is not None, DERIVE_KEY=seed_counter is not None,
            NORMALIZE=columns is not None, BLOCK=BLOCK, num_warps=WARPS)
    return out


def dropout_triton(x, rate, seed, seed_counter=None, offset=0):
    """Triton dropout: y = x * keep_mask * (1 / (1 - rate)); also the backward (pass dy)."""
    _util.require_triton("dropout_triton")
    _check("dropout_triton", "triton", rate, seed, seed_counter, offset, {"x": x})
    return _launch_triton(x, None, rate, seed, seed_counter, offset)


def dropout_relu_triton(x, rate, seed, seed_counter=None, offset=0):
    """Triton fused y = dropout(relu(x))."""
    _util.require_triton("dropout_relu_triton")
    _check("dropout_relu_triton", "triton", rate, seed, seed_counter, offset, {"x": x})
    return _launch_triton(x, x, rate, seed, seed_counter, offset)


def dropout_relu_backward_triton(dy, x, rate, seed, seed_counter=None, offset=0):
    """Triton backward of dropout_relu: dy * (x > 0) * keep_mask * (1 / (1 - rate))."""
    _util.require_triton("dropout_relu_backward_triton")
    _check("dropout_relu_backward_triton", "triton", rate, seed, seed_counter, offset, {"dy": dy, "x": x})
    return _launch_triton(dy, x, rate, seed, seed_counter, offset)


def normalize_dropout_relu_triton(x, mean, rstd, gamma, beta, rate, seed, seed_counter=None, offset=0):
    """Triton normalize_dropout_relu: batch-norm's apply, ReLU and dropout in one pass."""
    _util.require_triton("normalize_dropout_relu_triton")
    _check_normalize("normalize_dropout_relu_triton", "triton", x, mean, rstd, gamma, beta, rate, seed, seed_counter,
                     offset)
    return _launch_triton(x, None, rate, seed, seed_counter, offset, (mean, rstd, gamma, beta))


def _check_normalize(where, device, x, mean, rstd, gamma, beta, rate, seed, seed_counter, offset):
    _check(where, device, rate, seed, seed_counter, offset, {"x": x})
    columns = {"mean": mean, "rstd": rstd, "gamma": gamma, "beta": beta}
    _util.check_arrays(where, {"x": x, **columns}, device)
    _util.check_float_dtype(where, {"x": x, **columns})
    if x.ndim != 2:
        raise ValueError(f"{where}: `x` must be an (N, C) array; received shape {x.shape}.")
    for name, column in columns.items():
        _util.check_shape(where, name, column, (x.shape[1],))


# ---------------------------------------------------------------------------
# CuPy: the same Philox4x32-10 in CUDA C, one thread per counter writing 4 elements (the
# counters from offset // 4 on; the first one's lanes before element 0 are not ours).
# ---------------------------------------------------------------------------

_CUPY_SOURCE = r"""
__device__ void philox4x32_10(unsigned int* c, unsigned long long key) {
    unsigned int k0 = (unsigned int)key, k1 = (unsigned int)(key >> 32);
    for (int round = 0; round < 10; ++round) {
        unsigned int next0 = __umulhi(0xCD9E8D57u, c[2]) ^ c[1] ^ k0;
        unsigned int next2 = __umulhi(0xD2511F53u, c[0]) ^ c[3] ^ k1;
        c[1] = 0xCD9E8D57u * c[2];
        c[3] = 0xD2511F53u * c[0];
        c[0] = next0;
        c[2] = next2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

template<typename T>
__global__ void dropout_kernel(const T* src, const T* gate, T* out, const long long* seed_counter,
                               const T* mean, const T* rstd, const T* gamma, const T* beta, long long n, long long C,
                               unsigned long long seed, unsigned int threshold, T scale, long long offset,
                               int relu_gate, int derive_key, int normalize) {
    long long counter = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // from offset / 4 on
    long long first = counter * 4 - offset % 4;  // our element of the counter's word 0 (< 0: before ours)
    if (first >= n) return;
    unsigned long long key = seed;
    if (derive_key) {  // key = c0 | c1 << 32 of Philox at (index, call, 0, 0) under seed
        unsigned int key_words[4] = {(unsigned int)seed_counter[0], (unsigned int)seed_counter[1], 0u, 0u};
        philox4x32_10(key_words, seed);
        key = key_words[0] | ((unsigned long long)key_words[1] << 32);
    }
    unsigned long long philox_counter = (unsigned long long)(offset / 4 + counter);
    unsigned int words[4] = {(unsigned int)philox_counter, (unsigned int)(philox_counter >> 32), 0u, 0u};
    philox4x32_10(words, key);
    for (int lane = first < 0 ? (int)-first : 0; lane < 4; ++lane) {
        long long i = first + lane;
        if (i < n) {
            T v = src[i];
            if (normalize) {  // batch-norm's apply of column i % C first; the ReLU gate is on it
                long long c = i % C;
                v = (v - mean[c]) * (rstd[c] * gamma[c]) + beta[c];
            }
            bool keep = words[lane] >= threshold && (!relu_gate || (normalize ? v : gate[i]) > (T)0);
            out[i] = keep ? v * scale : (T)0;
        }
    }
}
"""


_CUPY_DROPOUT = _util.CupyRaw(_CUPY_SOURCE, "dropout_kernel")
CUPY_KERNELS = (_CUPY_DROPOUT,)
CUPY_THREADS = 256  # threads per block: one counter (4 elements) per thread


def _launch_cupy(src, gate, rate, seed, seed_counter, offset, columns=None):
    """columns: None, or (mean, rstd, gamma, beta) of batch-norm's apply to run first."""
    out = _util.cupy.empty_like(src)
    n = src.size
    if n == 0:
        return out
    kernel = _util.cupy_function(_CUPY_DROPOUT, src.dtype)
    kernel((_util.cdiv(_util.cdiv(offset % 4 + n, 4), CUPY_THREADS),), (CUPY_THREADS,),
           (src, gate if gate is not None else src, out, seed_counter if seed_counter is not None else src,
            *(columns if columns is not None else (src,) * 4), np.int64(n),
            np.int64(src.shape[-1] if src.ndim else 1), np.uint64(int(seed)), np.uint32(keep_threshold(rate)),
            src.dtype.type(1.0 / (1.0 - rate)), np.int64(offset), np.int32(gate is not None or columns is not None),
            np.int32(seed_counter is not None), np.int32(columns is not None)))
    return out


def dropout_cupy(x, rate, seed, seed_counter=None, offset=0):
    """CuPy dropout: y = x * keep_mask * (1 / (1 - rate)); also the backward (pass dy)."""
    _util.require_cupy("dropout_cupy")
    _check("dropout_cupy", "cupy", rate, seed, seed_counter, offset, {"x": x})
    return _launch_cupy(x, None, rate, seed, seed_counter, offset)


def dropout_relu_cupy(x, rate, seed, seed_counter=None, offset=0):
    """CuPy fused y = dropout(relu(x))."""
    _util.require_cupy("dropout_relu_cupy")
    _check("dropout_relu_cupy", "cupy", rate, seed, seed_counter, offset, {"x": x})
    return _launch_cupy(x, x, rate, seed, seed_counter, offset)


def dropout_relu_backward_cupy(dy, x, rate, seed, seed_counter=None, offset=0):
    """CuPy backward of dropout_relu: dy * (x > 0) * keep_mask * (1 / (1 - rate))."""
    _util.require_cupy("dropout_relu_backward_cupy")
    _check("dropout_relu_backward_cupy", "cupy", rate, seed, seed_counter, offset, {"dy": dy, "x": x})
    return _launch_cupy(dy, x, rate, seed, seed_counter, offset)


def normalize_dropout_relu_cupy(x, mean, rstd, gamma, beta, rate, seed, seed_counter=None, offset=0):
    """CuPy normalize_dropout_relu: batch-norm's apply, ReLU and dropout in one pass."""
    _util.require_cupy("normalize_dropout_relu_cupy")
    _check_normalize("normalize_dropout_relu_cupy", "cupy", x, mean, rstd, gamma, beta, rate, seed, seed_counter,
                     offset)
    return _launch_cupy(x, None, rate, seed, seed_counter, offset, (mean, rstd, gamma, beta))
