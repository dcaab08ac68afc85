"""Softmax with cross-entropy, forward and backward fused, numerically stable.

    a = softmax(z) = exp(z - max z) / sum exp(z - max z)
    L = 1/m sum_i (logsumexp(z_i) - sum_k y_ik z_ik)      (y one-hot or soft; sum_k y_ik = 1)
    dZ = (a - Y) / m                                       (the course's A - Y)
Integer labels are the one-hot case without building Y.

With `epsilon` > 0 it is Keras's loss of a softmax output instead, the probabilities
clipped to [epsilon, 1 - epsilon] before the log (keras.backend.epsilon() = 1e-7):
    L = -1/m sum_i sum_k y_ik log clip(a_ik)
    dZ = (a_i sum_k y_ik c_ik - y_i c_i) / m               (= c (A - Y) / m for one-hot rows)
c = d clip(a)/da as JAX differentiates Keras's clip: 1 inside, 0 outside, 1/2 on a bound
(a confidently wrong or confidently right sample gives no gradient). Unclipped entries
take log a = z - max z - log sum exp(z - max z), as in the exact form.
"""

import numpy as np


def softmax(logits):
    """Row-wise softmax, max-subtracted."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def clip_bounds(dtype, epsilon):
    """[epsilon, 1 - epsilon] rounded to `dtype`, as Keras's clip rounds them."""
    return dtype.type(epsilon), dtype.type(1 - epsilon)


def clip_gradient(probabilities, low, high):
    """d clip(a, low, high)/da as JAX gives it (a max then a min, each splitting a tie in two)."""
    inside_low = (probabilities > low).astype(probabilities.dtype) + (probabilities >= low)
    inside_high = (probabilities < high).astype(probabilities.dtype) + (probabilities <= high)
    return inside_low * inside_high / 4


def softmax_cross_entropy(logits, labels, dlogits=None, epsilon=0.0):
    """Returns (mean loss as a 0-d float64 array, dZ): the loss stays on the device, so
    a caller that accumulates it never waits for the device (float(loss) reads it).

    labels: int array (m,) of class indices, or float array (m, C) of one-hot or
    soft targets. dlogits: where to write dZ; pass `logits` itself to overwrite
    the logits (saves a (m, C) buffer; safe because nothing reads z after this).
    epsilon: 0 for the exact log-sum-exp form (from logits); > 0 for Keras's loss of
    the softmax output, probabilities clipped to [epsilon, 1 - epsilon] (module docstring).
    """
    m = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    log_sum_exp = np.log(sum_exp)
    rows = np.arange(m)
    one_over_m = logits.dtype.type(1.0 / m)
    if epsilon:
        low, high = clip_bounds(logits.dtype, epsilon)
        probabilities = exp * (logits.dtype.type(1) / sum_exp)  # one division per row, as the kernels
        passed = clip_gradient(probabilities, low, high)
        log_p = np.where(probabilities < low, np.log(low), np.where(probabilities > high, np.log(high),
                                                                   shifted - log_sum_exp))
        if labels.ndim == 1:
            row_loss = -log_p[rows, labels]
            label_passed = passed[rows, labels][:, None]
        else:
            row_loss = -(labels * log_p).sum(axis=1)
            label_passed = (labels * passed).sum(axis=1, keepdims=True)
    elif labels.ndim == 1:
        row_loss = log_sum_exp[:, 0] - shifted[rows, labels]
    else:
        row_loss = ((log_sum_exp - shifted) * labels).sum(axis=1)
    loss = np.asarray(np.sum(row_loss, dtype=np.float64) / m)
    if dlogits is None:
        dlogits = np.empty_like(logits)
    np.divide(exp, sum_exp * m, out=dlogits)
    if epsilon:
        dlogits *= label_passed
        if labels.ndim == 1:
            dlogits[rows, labels] -= label_passed[:, 0] * one_over_m
        else:
            dlogits -= labels * passed * one_over_m
    elif labels.ndim == 1:
        dlogits[rows, labels] -= one_over_m
    else:
        dlogits -= labels / logits.dtype.type(m)
    return loss, dlogits


# ---------------------------------------------------------------------------
# Triton
#
# One program per row, two sweeps over the row in BLOCK_C chunks:
#   1. online log-sum-exp: with r the running max (started at z_0, a finite value,
#      so no inf - inf), each chunk does
#          r' = max(r, max chunk);   s = s * exp(r - r') + sum exp(z - r')
#      and, for soft labels, keeps  q = sum_k y_k (z_k - r)  under the same shifts:
#          q' = q + (r - r') * sum_y + sum y (z - r')
#      row loss = log s - (z_label - r)   or   sum_y * log s - q.
#   2. dZ = exp(z - r) / (s * m) - y / m, written chunk by chunk (over z when in place).
# The (m, C) matrix is read twice and written once; nothing else of size m * C.
# Clipped (CLIP=1, Keras's loss of a softmax output): a = exp(z - r) * (1 / s) per entry, c its
# clip gradient; index labels need only a_label, before sweep 2: row loss -log clip(a_label),
# dZ = c_label (exp(z - r) / (s * m) - [k = label] / m). Soft labels take one more sweep
# between the two for sum_k y_k c_k and the row loss -sum_k y_k log clip(a_k), then
# dZ = exp(z - r) / (s * m) sum_k y_k c_k - y c / m.
# ---------------------------------------------------------------------------

from gpudl.kernels import _triton_util as _util  # noqa: E402

triton, tl = _util.triton, _util.tl

NO_LABELS, INDEX_LABELS, SOFT_LABELS = 0, 1, 2

if triton is not None:

    @triton.jit
    def _clip_gradient(p, low, high):
        """d clip(p, low, high)/dp as JAX gives it: 1 inside, 0 outside, 1/2 on a bound."""
        inside_low = (p > low).to(p.dtype) + (p >= low).to(p.dtype)
        inside_high = (p < high).to(p.dtype) + (p <= high).to(p.dtype)
        return inside_low * inside_high * 0.25

    @triton.jit
    def _clipped_log(p, log_p, low, high):
        """log clip(p, low, high), given log p for the unclipped p."""
        return tl.where(p < low, tl.log(low), tl.where(p > high, tl.log(high), log_p))

    @triton.jit
    def _softmax_cross_entropy_kernel(z_ptr, labels_ptr, out_ptr, row_loss_ptr, C, M, inv_m: tl.float64,
                                      low: tl.float64, high: tl.float64,
                                      LABELS: tl.constexpr, CLIP: tl.constexpr, BLOCK_C: tl.constexpr):
        # LABELS: 0 = softmax only, 1 = class indices, 2 = soft labels (literals: a
        # @triton.jit body reads only constexpr globals); CLIP: probabilities clipped to [low, high]
        dtype = z_ptr.dtype.element_ty
        row = tl.program_id(0).to(tl.int64)
        z_row = z_ptr + row * C
        out_row = out_ptr + row * C
        y_row = labels_ptr + row * C
        chunk = tl.arange(0, BLOCK_C)
        row_max = tl.load(z_row)
        sum_exp = tl.zeros((), dtype)
        sum_y = tl.zeros((), dtype)
        sum_y_shifted = tl.zeros((), dtype)
        for start in range(0, C, BLOCK_C):
            cols = start + chunk
            mask = cols < C
            z = tl.load(z_row + cols, mask=mask, other=-float("inf"))
            new_max = tl.maximum(row_max, tl.max(z, axis=0))
            sum_exp = sum_exp * tl.exp(row_max - new_max) + tl.sum(tl.exp(z - new_max), axis=0)
            if LABELS == 2 and CLIP == 0:
                y = tl.load(y_row + cols, mask=mask, other=0.0)
                shifted = tl.where(mask, z - new_max, 0.0)  # masked lanes hold -inf; keep 0 * -inf out
                sum_y_shifted += (row_max - new_max) * sum_y + tl.sum(y * shifted, axis=0)
                sum_y += tl.sum(y, axis=0)
            row_max = new_max
        log_sum_exp = tl.log(sum_exp)
        inv_sum_exp = _util.divide_ieee(tl.full((), 1.0, dtype), sum_exp)  # a = exp(z - r) * inv_sum_exp
        low_p, high_p = tl.full((), low, dtype), tl.full((), high, dtype)
        label_passed = tl.full((), 1.0, dtype)  # sum_k y_k c_k: 1 unclipped
        if LABELS == 1:
            label = tl.load(labels_ptr + row)
            in_range = (label >= 0) & (label < C)  # else the row loss is NaN (no host check on a device)
            z_label = tl.load(z_row + label, mask=in_range, other=float("nan"))
            label_loss = log_sum_exp - (z_label - row_max)
            if CLIP:
                p_label = tl.exp(z_label - row_max) * inv_sum_exp
                label_passed = _clip_gradient(p_label, low_p, high_p)
                label_loss = -_clipped_log(p_label, -label_loss, low_p, high_p)
            tl.store(row_loss_ptr + row, label_loss)
        if LABELS == 2 and CLIP == 0:
            tl.store(row_loss_ptr + row, sum_y * log_sum_exp - sum_y_shifted)
        if LABELS == 2 and CLIP == 1:
            label_passed = tl.zeros((), dtype)
            row_loss = tl.zeros((), dtype)
            for start in range(0, C, BLOCK_C):
                cols = start + chunk
                mask = cols < C
                shifted = tl.load(z_row + cols, mask=mask, other=-float("inf")) - row_max
                y = tl.load(y_row + cols, mask=mask, other=0.0)
                p = tl.exp(shifted) * inv_sum_exp  # masked lanes: p = 0, log clip p finite
                label_passed += tl.sum(y * _clip_gradient(p, low_p, high_p), axis=0)
                row_loss -= tl.sum(y * _clipped_log(p, shifted - log_sum_exp, low_p, high_p), axis=0)
            tl.store(row_loss_ptr + row, row_loss)
        # softmax / m as exp(z - r) times one correctly rounded reciprocal per row
        scale = _util.divide_ieee(tl.full((), 1.0, dtype), sum_exp * tl.full((), M, dtype))
        one_over_m = tl.full((), inv_m, dtype)
        for start in range(0, C, BLOCK_C):
            cols = start + chunk
            mask = cols < C
            # in place (out is z) is safe: each element is read before it is written,
            # by the same program, and z is not needed afterwards
            z = tl.load(z_row + cols, mask=mask, other=0.0)
            dz = tl.exp(z - row_max) * scale
            if CLIP:
                dz *= label_passed
            if LABELS == 1:
                dz = tl.where(cols == label, dz - label_passed * one_over_m, dz)
            if LABELS == 2:
                y = tl.load(y_row + cols, mask=mask, other=0.0)
                if CLIP:
                    y *= _clip_gradient(tl.exp(z - row_max) * inv_sum_exp, low_p, high_p)
                dz -= y * one_over_m
            tl.store(out_row + cols, dz, mask=mask)


def _check(where, device, logits, labels=None, dlogits=None, epsilon=0.0):
    """Shapes, dtypes, layout, label range and epsilon; returns the label kind."""
    if not 0 <= epsilon < 0.5:
        raise ValueError(f"{where}: `epsilon` must be in [0, 0.5) (0: the exact log-sum-exp form); "
                         f"received epsilon={epsilon}.")
    arrays = {"logits": logits}
    if labels is not None:
        arrays["labels"] = labels
    if dlogits is not None:
        arrays["dlogits"] = dlogits
    _util.check_arrays(where, arrays, device)
    float_arrays = {k: a for k, a in arrays.items() if k != "labels" or a.dtype.kind == "f"}
    _util.check_float_dtype(where, float_arrays)
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
        raise ValueError(f"{where}: `logits` must be a non-empty (m, C) array; received shape {logits.shape}.")
    m, C = logits.shape
    if dlogits is not None:
        _util.check_shape(where, "dlogits", dlogits, (m, C))
    if labels is None:
        return NO_LABELS
    if labels.dtype.kind == "f":
        _util.check_shape(where, "labels", labels, (m, C))
        return SOFT_LABELS
    if labels.dtype.kind not in "iu" or labels.dtype.itemsize not in (4, 8):
        raise ValueError(f"{where}: integer `labels` must be int32 or int64; received {labels.dtype}.")
    _util.check_shape(where, "labels", labels, (m,))
    if not _util.is_cupy(labels):  # on a device this would read back every step: the kernels
        low, high = int(labels.min()), int(labels.max())  # give the loss NaN there instead
        if low < 0 or high >= C:
            raise ValueError(f"{where}: `labels` must be class indices in [0, {C}); "
                             f"received values from {low} to {high}.")
    return INDEX_LABELS


def _block_c(C, dtype):
    """Whole row in one chunk up to 4096 float32 (16 KiB, 8 warps); longer rows loop."""
    block = min(_util.next_power_of_2(C), 4096 if dtype == np.float32 else 2048)
    return block, (4 if block <= 1024 else 8)


# Row widths whose block choices the compile check covers: a short row (one small
# chunk, 4 warps) and a long row (the largest chunk, 8 warps, looping).
SPECIALIZATION_WIDTHS = (10, 100_003)


def triton_specializations():
    """Every specialization the Triton launcher can launch (the compile check's table):
    each label kind (index labels as int32 or int64), exact and clipped, at SPECIALIZATION_WIDTHS."""
    label_kinds = ((NO_LABELS, None, 0),
                   *((kind, pointer, clip) for kind, pointer in ((INDEX_LABELS, "*i32"), (INDEX_LABELS, "*i64"),
                                                                 (SOFT_LABELS, None)) for clip in (0, 1)))
    for dtype in _util.FLOAT_DTYPES:
        for C in SPECIALIZATION_WIDTHS:
            BLOCK_C, num_warps = _block_c(C, np.dtype(dtype))
            for kind, label_pointer, clip in label_kinds:
                labels = {"labels_ptr": label_pointer} if label_pointer else {}
                spec = _util.triton_spec(_softmax_cross_entropy_kernel, dtype,
                                         dict(LABELS=kind, CLIP=clip, BLOCK_C=BLOCK_C), num_warps, **labels)
                yield spec._replace(label=spec.label + (f" labels={label_pointer[1:]}" if labels else ""))


def _launch_triton(logits, labels, out, kind, epsilon=0.0):
    m, C = logits.shape
    xp = _util.xp_of(logits)
    row_loss = xp.empty(m, logits.dtype)
    BLOCK_C, num_warps = _block_c(C, logits.dtype)
    low, high = clip_bounds(logits.dtype, epsilon)
    t = _util.as_triton
    with _util.launch_stream(logits):
        _softmax_cross_entropy_kernel[(m,)](
            t(logits), t(labels if labels is not None else logits), t(out), t(row_loss), C,
            m if kind != NO_LABELS else 1, float(logits.dtype.type(1.0 / m)), float(low), float(high),
            LABELS=kind, CLIP=int(bool(epsilon) and kind != NO_LABELS), BLOCK_C=BLOCK_C, num_warps=num_warps)
    return row_loss


def _mean_loss(row_loss):
    """The mean of the row losses, sum_i row_loss_i / m in float64, as a 0-d device array: no host
    read, and one launch (CuPy's mean is one reduction dividing in its last step; NumPy's mean is
    the same sum and division, so the value is that of sum / m)."""
    xp = _util.xp_of(row_loss)
    return xp.asarray(xp.mean(row_loss, dtype=np.float64))


def softmax_triton(logits):
    """Triton row-wise softmax, max-subtracted."""
    _util.require_triton("softmax_triton")
    _check("softmax_triton", "triton", logits)
    out = _util.xp_of(logits).empty_like(logits)
    _launch_triton(logits, None, out, NO_LABELS)
    return out


def softmax_cross_entropy_triton(logits, labels, dlogits=None, epsilon=0.0):
    """Triton fused softmax-cross-entropy: returns (mean loss as a 0-d float64 array, dZ = (A - Y) / m);
    epsilon > 0: Keras's clipped loss of the softmax output (module docstring)."""
    _util.require_triton("softmax_cross_entropy_triton")
    kind = _check("softmax_cross_entropy_triton", "triton", logits, labels, dlogits, epsilon)
    if dlogits is None:
        dlogits = _util.xp_of(logits).empty_like(logits)
    row_loss = _launch_triton(logits, labels, dlogits, kind, epsilon)
    return _mean_loss(row_loss), dlogits


# ---------------------------------------------------------------------------
# CuPy: one block of 256 threads per row. Each thread keeps an online (max, sum exp,
# soft-label sums) over its strided columns; the block merges the threads' states
# in shared memory by the same rescaling rule, then writes dZ in a second sweep.
# Clipped soft labels take a sweep between the two for sum_k y_k c_k and the row loss
# (summed over the block the same way); clipped index labels need only a_label.
# ---------------------------------------------------------------------------

_CUPY_SOURCE = r"""
template<typename T>
__device__ void merge_state(T& r, T& s, T& sy, T& q, T r2, T s2, T sy2, T q2) {
    // states (max, sum exp(z - max), sum y, sum y (z - max)); a state with no columns
    // has s = sy = q = 0 and any r, so the rescaled terms vanish
    T r_new = max(r, r2);
    s = s * exp(r - r_new) + s2 * exp(r2 - r_new);
    q = q + (r - r_new) * sy + q2 + (r2 - r_new) * sy2;
    sy += sy2;
    r = r_new;
}

template<typename T>
__device__ T clip_gradient(T p, T low, T high) {
    // d clip(p, low, high)/dp as JAX gives it: 1 inside, 0 outside, 1/2 on a bound
    return ((T)(p > low) + (T)(p >= low)) * ((T)(p < high) + (T)(p <= high)) * (T)0.25;
}

template<typename T>
__device__ T clipped_log(T p, T log_p, T low, T high) {
    // log clip(p, low, high), given log p for the unclipped p
    return p < low ? log(low) : (p > high ? log(high) : log_p);
}

template<typename T>
__global__ void softmax_xent(const T* z, const long long* index_labels, const T* soft_labels, T* out,
                             T* row_loss, long long C, long long m_divisor, T one_over_m, int kind,
                             T low, T high) {
    // kind: 0 softmax only, 1 index labels, 2 soft labels; low > 0: probabilities clipped to [low, high]
    bool clip = low > (T)0;
    __shared__ T shared[4][256];
    long long row = blockIdx.x;
    const T* z_row = z + row * C;
    T* out_row = out + row * C;
    T r = z_row[0], s = 0, sy = 0, q = 0;
    for (long long k = threadIdx.x; k < C; k += blockDim.x) {
        T y = kind == 2 ? soft_labels[row * C + k] : (T)0;
        merge_state(r, s, sy, q, z_row[k], (T)1, y, (T)0);
    }
    shared[0][threadIdx.x] = r; shared[1][threadIdx.x] = s;
    shared[2][threadIdx.x] = sy; shared[3][threadIdx.x] = q;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) {
            int other = threadIdx.x + stride;
            merge_state(r, s, sy, q, shared[0][other], shared[1][other], shared[2][other], shared[3][other]);
            shared[0][threadIdx.x] = r; shared[1][threadIdx.x] = s;
            shared[2][threadIdx.x] = sy; shared[3][threadIdx.x] = q;
        }
        __syncthreads();
    }
    r = shared[0][0]; s = shared[1][0]; sy = shared[2][0]; q = shared[3][0];
    long long label = kind == 1 ? index_labels[row] : -1;
    T log_s = log(s), inv_s = (T)1 / s, label_passed = 1;  // a = exp(z - r) * inv_s; sum_k y_k c_k: 1 unclipped
    if (kind == 1) {
        // a label outside [0, C) gives a NaN row loss (no host check on a device)
        T z_label = label >= 0 && label < C ? z_row[label] : (T)nan("");
        T label_loss = log_s - (z_label - r);
        if (clip) {
            T p_label = exp(z_label - r) * inv_s;
            label_passed = clip_gradient(p_label, low, high);
            label_loss = -clipped_log(p_label, -label_loss, low, high);
        }
        if (threadIdx.x == 0) row_loss[row] = label_loss;
    }
    if (kind == 2 && !clip && threadIdx.x == 0) row_loss[row] = sy * log_s - q;
    if (kind == 2 && clip) {
        T passed = 0, loss = 0;
        for (long long k = threadIdx.x; k < C; k += blockDim.x) {
            T y = soft_labels[row * C + k], shifted = z_row[k] - r, p = exp(shifted) * inv_s;
            passed += y * clip_gradient(p, low, high);
            loss -= y * clipped_log(p, shifted - log_s, low, high);
        }
        __syncthreads();  // every thread has read the merged state from shared[.][0]
        shared[0][threadIdx.x] = passed; shared[1][threadIdx.x] = loss;
        __syncthreads();
        for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
            if (threadIdx.x < stride) {
                shared[0][threadIdx.x] += shared[0][threadIdx.x + stride];
                shared[1][threadIdx.x] += shared[1][threadIdx.x + stride];
            }
            __syncthreads();
        }
        label_passed = shared[0][0];
        if (threadIdx.x == 0) row_loss[row] = shared[1][0];
    }
    __syncthreads();  // z_row[label] is read before anyone may overwrite it in place
    T scale = (T)1 / (s * (T)m_divisor);
    for (long long k = threadIdx.x; k < C; k += blockDim.x) {
        T e = exp(z_row[k] - r);
        T dz = e * scale * label_passed;
        if (kind == 1 && k == label) dz -= label_passed * one_over_m;
        if (kind == 2) dz -= soft_labels[row * C + k] * (clip ? clip_gradient(e * inv_s, low, high) : (T)1) * one_over_m;
        out_row[k] = dz;
    }
}
"""


_CUPY_SOFTMAX_XENT = _util.CupyRaw(_CUPY_SOURCE, "softmax_xent")
CUPY_KERNELS = (_CUPY_SOFTMAX_XENT,)


def _launch_cupy(logits, labels, out, kind, epsilon=0.0):
    cupy = _util.cupy
    m, C = logits.shape
    row_loss = cupy.empty(m, logits.dtype)
    index_labels = labels.astype(cupy.int64, copy=False) if kind == INDEX_LABELS else row_loss
    soft_labels = labels if kind == SOFT_LABELS else logits
    low, high = clip_bounds(logits.dtype, epsilon)
    kernel = _util.cupy_function(_CUPY_SOFTMAX_XENT, logits.dtype)
    kernel((m,), (256,), (logits, index_labels, soft_labels, out, row_loss, np.int64(C),
                          np.int64(m if kind != NO_LABELS else 1), logits.dtype.type(1.0 / m), np.int32(kind),
                          low, high))
    return row_loss


def softmax_cupy(logits):
    """CuPy row-wise softmax, max-subtracted."""
    _util.require_cupy("softmax_cupy")
    _check("softmax_cupy", "cupy", logits)
    out = _util.cupy.empty_like(logits)
    _launch_cupy(logits, None, out, NO_LABELS)
    return out


def softmax_cross_entropy_cupy(logits, labels, dlogits=None, epsilon=0.0):
    """CuPy fused softmax-cross-entropy: returns (mean loss as a 0-d float64 array, dZ = (A - Y) / m);
    epsilon > 0: Keras's clipped loss of the softmax output (module docstring)."""
    _util.require_cupy("softmax_cross_entropy_cupy")
    kind = _check("softmax_cross_entropy_cupy", "cupy", logits, labels, dlogits, epsilon)
    if dlogits is None:
        dlogits = _util.cupy.empty_like(logits)
    row_loss = _launch_cupy(logits, labels, dlogits, kind, epsilon)
    return _mean_loss(row_loss), dlogits
