"""Batch normalization over the batch axis of (N, C), with an optional fused ReLU.

Training forward (course notation, per feature):
    mu = 1/m sum_i x_i          var = 1/m sum_i (x_i - mu)^2      (biased)
    x_hat = (x - mu) * rstd,    rstd = 1 / sqrt(var + eps)
    y = gamma * x_hat + beta    (then max(y, 0) when relu)
    running <- momentum * running + (1 - momentum) * batch statistic   (in place)
With dropout_rate > 0 (and relu) the apply pass also drops: y = dropout(relu(...)) in one
pass (gpudl.kernels.dropout.normalize_dropout_relu; the mask from seed and seed_counter).
Backward, with dy already masked by y > 0 when relu:
    dbeta = sum_i dy_i      dgamma = sum_i dy_i * x_hat_i
    dx = gamma * rstd * (dy - dbeta / m - x_hat * dgamma / m)
x_hat is recomputed from (x, mean, rstd), so nothing but two C-vectors is saved. With
`gate` (the forward's output of a fused BN -> ReLU [-> dropout] block) dy is first
    dy <- where(gate > 0, dy * gate_scale, 0)      (gate_scale = 1 / (1 - rate), or 1)
since exactly the kept, positive elements of the block's output are > 0. dgamma and dbeta are
written into `dgamma`, `dbeta` when given (a layer's gradient views: no copy after).
The NumPy reference makes one pass over (N, C) per NumPy call, in place where it can
(the output's buffer holds x - mu, then y; a per-thread scratch buffer holds the other
temporary), and rounds exactly as np.mean, np.var and the formulas above written out.
"""

import numpy as np

from gpudl import threads


def forward_train(x, gamma, beta, running_mean, running_var, momentum, epsilon, relu=False, dropout_rate=0.0,
                  seed=0, seed_counter=None):
    """Returns (y, mean, rstd) and updates running_mean, running_var in place."""
    _check_dropout("forward_train", relu, dropout_rate)
    mean = x.mean(axis=0)
    y = np.subtract(x, mean)  # x - mu, kept: it is also the start of y
    squares = np.square(y, out=threads.scratch_like("batchnorm", y))
    var = squares.mean(axis=0)  # = x.var(axis=0), the same operations
    rstd = 1.0 / np.sqrt(var + x.dtype.type(epsilon))
    running_mean *= momentum
    running_mean += (1.0 - momentum) * mean
    running_var *= momentum
    running_var += (1.0 - momentum) * var
    if dropout_rate:
        from gpudl.kernels import dropout

        return dropout.dropout_relu(_scale_shift(y, rstd, gamma, beta, False), dropout_rate, seed,
                                    seed_counter), mean, rstd
    return _scale_shift(y, rstd, gamma, beta, relu), mean, rstd


def _check_dropout(where, relu, dropout_rate):
    if dropout_rate and not relu:
        raise ValueError(f"batchnorm.{where}: the fused dropout follows the ReLU; pass relu=True with "
                         f"dropout_rate={dropout_rate!r}.")


def normalize(x, mean, rstd, gamma, beta):
    """The apply pass: y = (x - mean) * (rstd * gamma) + beta."""
    return _scale_shift(np.subtract(x, mean), rstd, gamma, beta, False)


def forward_infer(x, gamma, beta, running_mean, running_var, epsilon, relu=False):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta."""
    rstd = 1.0 / np.sqrt(running_var + x.dtype.type(epsilon))
    return _scale_shift(np.subtract(x, running_mean), rstd, gamma, beta, relu)


def backward(dy, x, gamma, beta, mean, rstd, relu=False, gate=None, gate_scale=1.0, dgamma=None, dbeta=None):
    """Returns (dx, dgamma, dbeta) of the training forward."""
    if gate is not None:
        dy = np.where(gate > 0, dy * dy.dtype.type(gate_scale), dy.dtype.type(0))
    x_hat = np.subtract(x, mean)  # becomes dx
    x_hat *= rstd
    scratch = threads.scratch_like("batchnorm", x_hat)
    if relu:
        dy = np.where(np.greater(np.add(np.multiply(gamma, x_hat, out=scratch), beta, out=scratch), 0), dy,
                      dy.dtype.type(0))
    m = x.shape[0]
    dbeta = dy.sum(axis=0, out=dbeta)
    dgamma = np.multiply(dy, x_hat, out=scratch).sum(axis=0, out=dgamma)
    correction = np.multiply(x_hat, dgamma / m, out=x_hat)  # x_hat * dgamma / m
    dx = np.subtract(np.subtract(dy, dbeta / m, out=scratch), correction, out=x_hat)
    dx *= gamma * rstd
    return dx, dgamma, dbeta


def _scale_shift(centered, rstd, gamma, beta, relu):
    """y = (x - mean) * (rstd * gamma) + beta, in place over `centered` = x - mean."""
    y = centered
    y *= rstd * gamma
    y += beta
    if relu:
        np.maximum(y, 0, out=y)
    return y


# ---------------------------------------------------------------------------
# Triton
#
# Training forward = 3 launches, 2 reads of x and 1 write of y:
#   1. partial statistics: grid (column blocks, row splits); each program walks its
#      rows in (BLOCK_N, BLOCK_C) tiles of x - x[0] (shifted data: exact for values
#      near the mean) and merges each tile into a running (mean, M2) by Chan's rule,
#      so no large sums are ever formed:
#          n_ab = n_a + n_b,  delta = mean_b - mean_a
#          mean_ab = mean_a + delta * n_b / n_ab
#          M2_ab   = M2_a + M2_b + delta^2 * n_a * n_b / n_ab
#   2. finalize: one program per column block merges the splits in a fixed order
#      (deterministic, no atomics), writes mean and rstd, updates running stats.
#   3. normalize: y = (x - mean) * (rstd * gamma) + beta, elementwise over 2-D tiles.
# Backward = 3 launches, 2 reads of (x, dy) and 1 write of dx: partial sums of dy and
# dy * x_hat per split, a fixed-order sum of the splits, then dx elementwise.
# Accumulation is in the data dtype (float32 for float32).
# ---------------------------------------------------------------------------

from gpudl.kernels import _triton_util as _util  # noqa: E402

triton, tl = _util.triton, _util.tl

if triton is not None:

    @triton.jit
    def _partial_stats_kernel(x_ptr, part_mean_ptr, part_m2_ptr, N, C, rows_per_split,
                              BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
        dtype = x_ptr.dtype.element_ty
        cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
        split = tl.program_id(1)
        row_start = split * rows_per_split
        row_end = tl.minimum(row_start + rows_per_split, N)
        # shift by the batch's first row: x - shift is exact for nearby values, so a
        # large common mean (1e4 with unit spread) costs no precision in the sums;
        # every split uses the same shift, so the finalize merges shifted means
        shift = tl.load(x_ptr + cols, mask=cols < C, other=0.0)
        mean = tl.zeros((BLOCK_C,), dtype)
        m2 = tl.zeros((BLOCK_C,), dtype)
        for row0 in range(row_start, row_end, BLOCK_N):
            rows = row0 + tl.arange(0, BLOCK_N)
            mask = (rows < row_end)[:, None] & (cols < C)[None, :]
            x = tl.load(x_ptr + rows[:, None].to(tl.int64) * C + cols[None, :], mask=mask, other=0.0)
            x = tl.where(mask, x - shift[None, :], 0.0)
            n_a = (row0 - row_start).to(dtype)
            n_b = (tl.minimum(row_end - row0, BLOCK_N)).to(dtype)
            tile_mean = tl.sum(x, axis=0) / n_b
            centered = tl.where(mask, x - tile_mean[None, :], 0.0)
            tile_m2 = tl.sum(centered * centered, axis=0)
            n_ab = n_a + n_b
            delta = tile_mean - mean
            mean += delta * (n_b / n_ab)
            m2 += tile_m2 + delta * delta * (n_a * n_b / n_ab)
        out = split * C + cols
        tl.store(part_mean_ptr + out, mean, mask=cols < C)
        tl.store(part_m2_ptr + out, m2, mask=cols < C)

    @triton.jit
    def _finalize_stats_kernel(x_ptr, part_mean_ptr, part_m2_ptr, mean_ptr, rstd_ptr,
                               running_mean_ptr, running_var_ptr, N, C, rows_per_split, num_splits,
                               momentum: tl.float64, one_minus_momentum: tl.float64,
                               epsilon: tl.float64, BLOCK_C: tl.constexpr):
        dtype = mean_ptr.dtype.element_ty
        cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_ok = cols < C
        mean = tl.zeros((BLOCK_C,), dtype)
        m2 = tl.zeros((BLOCK_C,), dtype)
        for split in range(0, num_splits):  # fixed order: deterministic
            n_a = tl.full((), split * rows_per_split, dtype)
            n_b = tl.full((), tl.minimum(N - split * rows_per_split, rows_per_split), dtype)
            split_mean = tl.load(part_mean_ptr + split * C + cols, mask=col_ok, other=0.0)
            split_m2 = tl.load(part_m2_ptr + split * C + cols, mask=col_ok, other=0.0)
            n_ab = n_a + n_b
            delta = split_mean - mean
            mean += delta * (n_b / n_ab)
            m2 += split_m2 + delta * delta * (n_a * n_b / n_ab)
        mean += tl.load(x_ptr + cols, mask=col_ok, other=0.0)  # undo the shift by row 0
        var = m2 / tl.full((), N, dtype)
        rstd = _util.reciprocal_sqrt(var + tl.full((), epsilon, dtype))
        tl.store(mean_ptr + cols, mean, mask=col_ok)
        tl.store(rstd_ptr + cols, rstd, mask=col_ok)
        keep = tl.full((), momentum, dtype)
        blend = tl.full((), one_minus_momentum, dtype)
        running_mean = tl.load(running_mean_ptr + cols, mask=col_ok, other=0.0)
        running_var = tl.load(running_var_ptr + cols, mask=col_ok, other=0.0)
        tl.store(running_mean_ptr + cols, running_mean * keep + blend * mean, mask=col_ok)
        tl.store(running_var_ptr + cols, running_var * keep + blend * var, mask=col_ok)

    @triton.jit
    def _normalize_kernel(x_ptr, y_ptr, mean_ptr, rstd_or_var_ptr, gamma_ptr, beta_ptr, N, C,
                          epsilon: tl.float64, FROM_VARIANCE: tl.constexpr, RELU: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
        dtype = x_ptr.dtype.element_ty
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_ok = cols < C
        mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
        rstd = tl.load(rstd_or_var_ptr + cols, mask=col_ok, other=1.0)
        if FROM_VARIANCE:  # inference: rstd = 1 / sqrt(running_var + eps)
            rstd = _util.reciprocal_sqrt(rstd + tl.full((), epsilon, dtype))
        scale = rstd * tl.load(gamma_ptr + cols, mask=col_ok, other=0.0)
        beta = tl.load(beta_ptr + cols, mask=col_ok, other=0.0)
        mask = (rows < N)[:, None] & col_ok[None, :]
        offsets = rows[:, None].to(tl.int64) * C + cols[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
        y = (x - mean[None, :]) * scale[None, :] + beta[None, :]
        if RELU:
            y = tl.maximum(y, 0.0)
        tl.store(y_ptr + offsets, y, mask=mask)

    @triton.jit
    def _backward_partial_kernel(dy_ptr, x_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr, gate_ptr,
                                 part_dgamma_ptr, part_dbeta_ptr, N, C, rows_per_split, gate_scale: tl.float64,
                                 RELU: tl.constexpr, GATED: tl.constexpr, BLOCK_N: tl.constexpr,
                                 BLOCK_C: tl.constexpr):
        dtype = x_ptr.dtype.element_ty
        cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
        split = tl.program_id(1)
        col_ok = cols < C
        mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
        rstd = tl.load(rstd_ptr + cols, mask=col_ok, other=0.0)
        gamma = tl.load(gamma_ptr + cols, mask=col_ok, other=0.0)
        beta = tl.load(beta_ptr + cols, mask=col_ok, other=0.0)
        row_start = split * rows_per_split
        row_end = tl.minimum(row_start + rows_per_split, N)
        sum_dy = tl.zeros((BLOCK_N, BLOCK_C), dtype)  # per-lane sums, reduced once at the end
        sum_dy_x_hat = tl.zeros((BLOCK_N, BLOCK_C), dtype)
        for row0 in range(row_start, row_end, BLOCK_N):
            rows = row0 + tl.arange(0, BLOCK_N)
            mask = (rows < row_end)[:, None] & col_ok[None, :]
            offsets = rows[:, None].to(tl.int64) * C + cols[None, :]
            x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
            dy = tl.load(dy_ptr + offsets, mask=mask, other=0.0)
            x_hat = (x - mean[None, :]) * rstd[None, :]
            if RELU:
                dy = tl.where(gamma[None, :] * x_hat + beta[None, :] > 0, dy, 0.0)
            if GATED:  # the fused block's ReLU and dropout: its output > 0
                gate = tl.load(gate_ptr + offsets, mask=mask, other=0.0)
                dy = tl.where(gate > 0, dy * tl.full((), gate_scale, dtype), 0.0)
            sum_dy += dy
            sum_dy_x_hat += dy * x_hat
        out = split * C + cols
        tl.store(part_dbeta_ptr + out, tl.sum(sum_dy, axis=0), mask=col_ok)
        tl.store(part_dgamma_ptr + out, tl.sum(sum_dy_x_hat, axis=0), mask=col_ok)

    @triton.jit
    def _backward_finalize_kernel(part_dgamma_ptr, part_dbeta_ptr, dgamma_ptr, dbeta_ptr, C, num_splits,
                                  BLOCK_C: tl.constexpr):
        dtype = dgamma_ptr.dtype.element_ty
        cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_ok = cols < C
        dgamma = tl.zeros((BLOCK_C,), dtype)
        dbeta = tl.zeros((BLOCK_C,), dtype)
        for split in range(0, num_splits):  # fixed order: deterministic
            dgamma += tl.load(part_dgamma_ptr + split * C + cols, mask=col_ok, other=0.0)
            dbeta += tl.load(part_dbeta_ptr + split * C + cols, mask=col_ok, other=0.0)
        tl.store(dgamma_ptr + cols, dgamma, mask=col_ok)
        tl.store(dbeta_ptr + cols, dbeta, mask=col_ok)

    @triton.jit
    def _backward_dx_kernel(dy_ptr, x_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr, gate_ptr, dgamma_ptr, dbeta_ptr,
                            dx_ptr, N, C, gate_scale: tl.float64, RELU: tl.constexpr, GATED: tl.constexpr,
                            BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
        dtype = x_ptr.dtype.element_ty
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_ok = cols < C
        mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
        rstd = tl.load(rstd_ptr + cols, mask=col_ok, other=0.0)
        gamma = tl.load(gamma_ptr + cols, mask=col_ok, other=0.0)
        beta = tl.load(beta_ptr + cols, mask=col_ok, other=0.0)
        m = tl.full((), N, dtype)
        dbeta_mean = tl.load(dbeta_ptr + cols, mask=col_ok, other=0.0) / m
        dgamma_mean = tl.load(dgamma_ptr + cols, mask=col_ok, other=0.0) / m
        mask = (rows < N)[:, None] & col_ok[None, :]
        offsets = rows[:, None].to(tl.int64) * C + cols[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
        dy = tl.load(dy_ptr + offsets, mask=mask, other=0.0)
        x_hat = (x - mean[None, :]) * rstd[None, :]
        if RELU:
            dy = tl.where(gamma[None, :] * x_hat + beta[None, :] > 0, dy, 0.0)
        if GATED:
            gate = tl.load(gate_ptr + offsets, mask=mask, other=0.0)
            dy = tl.where(gate > 0, dy * tl.full((), gate_scale, dtype), 0.0)
        dx = (gamma * rstd)[None, :] * (dy - dbeta_mean[None, :] - x_hat * dgamma_mean[None, :])
        tl.store(dx_ptr + offsets, dx, mask=mask)


def _check(where, device, x, gamma, beta, stats, extra=None):
    """Shapes, dtype and layout of the arguments; returns (N, C)."""
    arrays = {"x": x, "gamma": gamma, "beta": beta, **stats, **(extra or {})}
    _util.check_arrays(where, arrays, device)
    _util.check_float_dtype(where, arrays)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{where}: `x` must be a non-empty (N, C) array; received shape {x.shape}.")
    N, C = x.shape
    for name, array in arrays.items():
        if name in ("x", "dy", "dx", "gate"):
            _util.check_shape(where, name, array, (N, C))
        else:
            _util.check_shape(where, name, array, (C,))
    return N, C


def _checked_out(where, name, out, x):
    """An output array for a C-vector of x's dtype: shape (C,), C-contiguous, on x's device."""
    _util.check_arrays(where, {"x": x, name: out}, "cupy" if _util.is_cupy(x) else "triton")
    _util.check_float_dtype(where, {"x": x, name: out})
    _util.check_shape(where, name, out, (x.shape[1],))
    return out


def _reduction_blocks(C, dtype):
    return (32 if dtype == np.float32 else 16), min(64, _util.next_power_of_2(C))


def _reduction_grid(N, C, dtype):
    """(BLOCK_N, BLOCK_C, rows_per_split, num_splits) for the column reductions.

    BLOCK_C = 64 columns: 256-byte coalesced row segments (float32); BLOCK_N rows so a
    tile is 8 KiB (16 float32 per thread at 4 warps). Rows are split until there are
    about 4 programs per SM, since C / BLOCK_C column blocks alone rarely fill the GPU.
    """
    BLOCK_N, BLOCK_C = _reduction_blocks(C, dtype)
    col_blocks = _util.cdiv(C, BLOCK_C)
    splits = max(1, min(_util.cdiv(_util.num_programs_target(), col_blocks), _util.cdiv(N, BLOCK_N)))
    rows_per_split = _util.cdiv(_util.cdiv(N, splits), BLOCK_N) * BLOCK_N
    return BLOCK_N, BLOCK_C, rows_per_split, _util.cdiv(N, rows_per_split)


ELEMENTWISE_WARPS = 8  # 16 float32 or 8 float64 per thread in a 16 KiB tile


def _elementwise_blocks(C, dtype):
    """2-D tiles of 16 KiB (4096 float32 or 2048 float64): enough bytes in flight per
    program. (The compile check found 4096-float64 tiles at 4 warps spilling registers.)"""
    BLOCK_C = min(128, _util.next_power_of_2(C))
    return 16384 // np.dtype(dtype).itemsize // BLOCK_C, BLOCK_C


# Shapes whose block choices the compile check covers: one narrow batch (the smallest
# tiles) and one wide batch (the largest tiles the pickers choose).
SPECIALIZATION_SHAPES = ((1, 7), (4096, 4096))


def triton_specializations():
    """Every specialization the Triton launchers can launch (the compile check's table),
    from the launchers' own block pickers at SPECIALIZATION_SHAPES."""
    for dtype in _util.FLOAT_DTYPES:
        for N, C in SPECIALIZATION_SHAPES:
            BLOCK_N, BLOCK_C = _reduction_blocks(C, dtype)
            EW_BLOCK_N, EW_BLOCK_C = _elementwise_blocks(C, dtype)
            tiles = dict(BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C)
            yield _util.triton_spec(_partial_stats_kernel, dtype, tiles)
            yield _util.triton_spec(_finalize_stats_kernel, dtype, dict(BLOCK_C=BLOCK_C))
            yield _util.triton_spec(_backward_finalize_kernel, dtype, dict(BLOCK_C=BLOCK_C))
            for relu in (False, True):
                for from_variance in (False, True):
                    yield _util.triton_spec(_normalize_kernel, dtype, dict(
                        FROM_VARIANCE=from_variance, RELU=relu, BLOCK_N=EW_BLOCK_N, BLOCK_C=EW_BLOCK_C),
                        ELEMENTWISE_WARPS)
            for relu, gated in ((False, False), (True, False), (False, True)):
                yield _util.triton_spec(_backward_partial_kernel, dtype, dict(RELU=relu, GATED=gated, **tiles))
                yield _util.triton_spec(_backward_dx_kernel, dtype, dict(RELU=relu, GATED=gated, BLOCK_N=EW_BLOCK_N,
                                                                         BLOCK_C=EW_BLOCK_C), ELEMENTWISE_WARPS)


def _normalize_triton(x, gamma, beta, mean, rstd_or_var, epsilon, from_variance, relu):
    N, C = x.shape
    y = _util.xp_of(x).empty_like(x)
    BLOCK_N, BLOCK_C = _elementwise_blocks(C, x.dtype)
    grid = (_util.cdiv(N, BLOCK_N), _util.cdiv(C, BLOCK_C))
    t = _util.as_triton
    with _util.launch_stream(x):
        _normalize_kernel[grid](t(x), t(y), t(mean), t(rstd_or_var), t(gamma), t(beta), N, C, float(epsilon),
                                FROM_VARIANCE=from_variance, RELU=bool(relu), BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C,
                                num_warps=ELEMENTWISE_WARPS)
    return y


def forward_train_triton(x, gamma, beta, running_mean, running_var, momentum, epsilon, relu=False, dropout_rate=0.0,
                         seed=0, seed_counter=None):
    """Triton forward_train: returns (y, mean, rstd), updates running stats in place."""
    _util.require_triton("forward_train_triton")
    _check_dropout("forward_train_triton", relu, dropout_rate)
    N, C = _check("forward_train_triton", "triton", x, gamma, beta,
                  {"running_mean": running_mean, "running_var": running_var})
    xp = _util.xp_of(x)
    BLOCK_N, BLOCK_C, rows_per_split, splits = _reduction_grid(N, C, x.dtype)
    part_mean = xp.empty((splits, C), x.dtype)
    part_m2 = xp.empty((splits, C), x.dtype)
    mean = xp.empty(C, x.dtype)
    rstd = xp.empty(C, x.dtype)
    t = _util.as_triton
    with _util.launch_stream(x):
        _partial_stats_kernel[(_util.cdiv(C, BLOCK_C), splits)](
            t(x), t(part_mean), t(part_m2), N, C, rows_per_split, BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C)
        _finalize_stats_kernel[(_util.cdiv(C, BLOCK_C),)](
            t(x), t(part_mean), t(part_m2), t(mean), t(rstd), t(running_mean), t(running_var),
            N, C, rows_per_split, splits, float(momentum), 1.0 - float(momentum), float(epsilon),
            BLOCK_C=BLOCK_C)
    if dropout_rate:
        from gpudl.kernels import dropout

        return dropout.normalize_dropout_relu_triton(x, mean, rstd, gamma, beta, dropout_rate, seed,
                                                     seed_counter), mean, rstd
    y = _normalize_triton(x, gamma, beta, mean, rstd, epsilon, False, relu)
    return y, mean, rstd


def forward_infer_triton(x, gamma, beta, running_mean, running_var, epsilon, relu=False):
    """Triton forward_infer: y from the running statistics."""
    _util.require_triton("forward_infer_triton")
    _check("forward_infer_triton", "triton", x, gamma, beta,
           {"running_mean": running_mean, "running_var": running_var})
    return _normalize_triton(x, gamma, beta, running_mean, running_var, epsilon, True, relu)


def backward_triton(dy, x, gamma, beta, mean, rstd, relu=False, gate=None, gate_scale=1.0, dgamma=None, dbeta=None):
    """Triton backward: returns (dx, dgamma, dbeta); deterministic (no atomics)."""
    _util.require_triton("backward_triton")
    N, C = _check("backward_triton", "triton", x, gamma, beta, {"mean": mean, "rstd": rstd},
                  {"dy": dy, **({} if gate is None else {"gate": gate})})
    xp = _util.xp_of(x)
    BLOCK_N, BLOCK_C, rows_per_split, splits = _reduction_grid(N, C, x.dtype)
    part_dgamma = xp.empty((splits, C), x.dtype)
    part_dbeta = xp.empty((splits, C), x.dtype)
    dgamma = xp.empty(C, x.dtype) if dgamma is None else _checked_out("backward_triton", "dgamma", dgamma, x)
    dbeta = xp.empty(C, x.dtype) if dbeta is None else _checked_out("backward_triton", "dbeta", dbeta, x)
    dx = xp.empty_like(x)
    EW_BLOCK_N, EW_BLOCK_C = _elementwise_blocks(C, x.dtype)
    t = _util.as_triton
    with _util.launch_stream(x):
        _backward_partial_kernel[(_util.cdiv(C, BLOCK_C), splits)](
            t(dy), t(x), t(mean), t(rstd), t(gamma), t(beta), t(gate if gate is not None else dy), t(part_dgamma),
            t(part_dbeta), N, C, rows_per_split, float(x.dtype.type(gate_scale)), RELU=bool(relu),
            GATED=gate is not None, BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C)
        _backward_finalize_kernel[(_util.cdiv(C, BLOCK_C),)](
            t(part_dgamma), t(part_dbeta), t(dgamma), t(dbeta), C, splits, BLOCK_C=BLOCK_C)
        _backward_dx_kernel[(_util.cdiv(N, EW_BLOCK_N), _util.cdiv(C, EW_BLOCK_C))](
            t(dy), t(x), t(mean), t(rstd), t(gamma), t(beta), t(gate if gate is not None else dy), t(dgamma),
            t(dbeta), t(dx), N, C, float(x.dtype.type(gate_scale)), RELU=bool(relu), GATED=gate is not None,
            BLOCK_N=EW_BLOCK_N, BLOCK_C=EW_BLOCK_C, num_warps=ELEMENTWISE_WARPS)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# CuPy
#
# One thread per column walks a split of the rows (adjacent threads read adjacent
# columns: coalesced). Statistics of x - x[0] by Welford's update per element,
#     mean += (x - mean) / k,   M2 += (x - mean_old) * (x - mean_new),
# then one thread per column merges the splits in a fixed order by Chan's rule (as the
# Triton finalize does), writes mean and rstd and updates the running statistics: one
# launch for everything between the partial sums and the apply pass.
# Backward: per-split sums of dy and dy * x_hat, summed over splits (CuPy's reduction
# is a fixed tree: deterministic), then dx by an elementwise kernel.
# ---------------------------------------------------------------------------

_CUPY_SOURCE = r"""
template<typename T>
__global__ void bn_partial_stats(const T* x, T* part_mean, T* part_m2,
                                 long long N, long long C, long long rows_per_split) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long split = blockIdx.y;
    if (c >= C) return;
    long long start = split * rows_per_split;
    long long end = min(start + rows_per_split, N);
    T shift = x[c];  // row 0: x - shift is exact near the mean (see the Triton kernel)
    T mean = 0, m2 = 0;
    for (long long i = start; i < end; ++i) {
        T v = x[i * C + c] - shift;
        T delta = v - mean;
        mean += delta / (T)(i - start + 1);
        m2 += delta * (v - mean);
    }
    part_mean[split * C + c] = mean;
    part_m2[split * C + c] = m2;
}

template<typename T>
__global__ void bn_finalize_stats(const T* x, const T* part_mean, const T* part_m2, T* mean, T* rstd,
                                  T* running_mean, T* running_var, long long N, long long C,
                                  long long rows_per_split, long long splits, T momentum,
                                  T one_minus_momentum, T epsilon) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    T m = 0, m2 = 0, n_a = 0;
    for (long long split = 0; split < splits; ++split) {  // fixed order: deterministic
        T n_b = (T)min(rows_per_split, N - split * rows_per_split);
        T n_ab = n_a + n_b;
        T delta = part_mean[split * C + c] - m;
        m += delta * (n_b / n_ab);
        m2 += part_m2[split * C + c] + delta * delta * (n_a * n_b / n_ab);
        n_a = n_ab;
    }
    T var = m2 / (T)N;
    T mu = x[c] + m;  // undo the shift by row 0
    mean[c] = mu;
    rstd[c] = (T)1 / sqrt(var + epsilon);
    running_mean[c] = running_mean[c] * momentum + one_minus_momentum * mu;
    running_var[c] = running_var[c] * momentum + one_minus_momentum * var;
}

template<typename T>
__global__ void bn_backward_partial(const T* dy, const T* x, const T* mean, const T* rstd,
                                    const T* gamma, const T* beta, const T* gate, T* part_dgamma, T* part_dbeta,
                                    long long N, long long C, long long rows_per_split, int relu, int gated,
                                    T gate_scale) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long split = blockIdx.y;
    if (c >= C) return;
    long long start = split * rows_per_split;
    long long end = min(start + rows_per_split, N);
    T mu = mean[c], r = rstd[c], g = gamma[c], b = beta[c];
    T sum_dy = 0, sum_dy_x_hat = 0;
    for (long long i = start; i < end; ++i) {
        T x_hat = (x[i * C + c] - mu) * r;
        T d = dy[i * C + c];
        if (relu && !(g * x_hat + b > (T)0)) d = 0;
        if (gated) d = gate[i * C + c] > (T)0 ? d * gate_scale : (T)0;  // the fused block's ReLU and dropout
        sum_dy += d;
        sum_dy_x_hat += d * x_hat;
    }
    part_dbeta[split * C + c] = sum_dy;
    part_dgamma[split * C + c] = sum_dy_x_hat;
}
"""

# Elementwise kernels (raw kernels from CuPy-style strings): C-vectors broadcast over the rows of (N, C)
_CUPY_NORMALIZE = _util.CupyElementwise(
    "T x, T mean, T rstd, T gamma, T beta, bool relu", "T y",
    "y = (x - mean) * (rstd * gamma) + beta; if (relu && y < (T)0) y = (T)0;",
    "gpudl_bn_normalize", scalars=("relu",), columns=("mean", "rstd", "gamma", "beta"))
_CUPY_BACKWARD_DX = _util.CupyElementwise(
    "T dy, T x, T mean, T rstd, T gamma, T beta, T dgamma, T dbeta, T m, bool relu, raw T gate, "
    "T gate_scale, bool gated", "T dx",
    """T x_hat = (x - mean) * rstd;
       T d = (relu && !(gamma * x_hat + beta > (T)0)) ? (T)0 : dy;
       if (gated) d = gate[i] > (T)0 ? d * gate_scale : (T)0;
       dx = (gamma * rstd) * (d - dbeta / m - x_hat * (dgamma / m));""",
    "gpudl_bn_backward_dx", scalars=("m", "relu", "gate_scale", "gated"),
    columns=("mean", "rstd", "gamma", "beta", "dgamma", "dbeta"))
_CUPY_PARTIAL_STATS = _util.CupyRaw(_CUPY_SOURCE, "bn_partial_stats")
_CUPY_FINALIZE_STATS = _util.CupyRaw(_CUPY_SOURCE, "bn_finalize_stats")
_CUPY_BACKWARD_PARTIAL = _util.CupyRaw(_CUPY_SOURCE, "bn_backward_partial")
CUPY_KERNELS = (_CUPY_PARTIAL_STATS, _CUPY_FINALIZE_STATS, _CUPY_BACKWARD_PARTIAL, _CUPY_NORMALIZE, _CUPY_BACKWARD_DX)


# a thread's sequential Welford run: fewer rows only add merge error, and the partial sums stay far
# smaller than x (a 1-row split writes as much as it reads)
CUPY_MIN_ROWS_PER_SPLIT = 32


def _cupy_splits(N, C):
    """256 threads (columns) per block; rows split until ~4 blocks per SM, at least
    CUPY_MIN_ROWS_PER_SPLIT rows each (at an H100's grid a 200-row batch was 200 one-row
    splits: partials as large as x and a 200-term merge, 8 roundings off the mean)."""
    threads = 256
    col_blocks = _util.cdiv(C, threads)
    splits = max(1, min(_util.cdiv(_util.num_programs_target(), col_blocks), _util.cdiv(N, CUPY_MIN_ROWS_PER_SPLIT)))
    rows_per_split = _util.cdiv(N, splits)
    return threads, col_blocks, rows_per_split, _util.cdiv(N, rows_per_split)


def forward_train_cupy(x, gamma, beta, running_mean, running_var, momentum, epsilon, relu=False, dropout_rate=0.0,
                       seed=0, seed_counter=None):
    """CuPy forward_train: returns (y, mean, rstd), updates running stats in place."""
    _util.require_cupy("forward_train_cupy")
    _check_dropout("forward_train_cupy", relu, dropout_rate)
    N, C = _check("forward_train_cupy", "cupy", x, gamma, beta,
                  {"running_mean": running_mean, "running_var": running_var})
    cupy = _util.cupy
    threads, col_blocks, rows_per_split, splits = _cupy_splits(N, C)
    part_mean = cupy.empty((splits, C), x.dtype)
    part_m2 = cupy.empty((splits, C), x.dtype)
    kernel = _util.cupy_function(_CUPY_PARTIAL_STATS, x.dtype)
    kernel((col_blocks, splits), (threads,), (x, part_mean, part_m2, np.int64(N), np.int64(C),
                                              np.int64(rows_per_split)))
    mean, rstd = cupy.empty(C, x.dtype), cupy.empty(C, x.dtype)
    finalize = _util.cupy_function(_CUPY_FINALIZE_STATS, x.dtype)
    finalize((_util.cdiv(C, threads),), (threads,),
             (x, part_mean, part_m2, mean, rstd, running_mean, running_var, np.int64(N), np.int64(C),
              np.int64(rows_per_split), np.int64(splits), x.dtype.type(momentum), x.dtype.type(1.0 - momentum),
              x.dtype.type(epsilon)))
    if dropout_rate:
        from gpudl.kernels import dropout

        return dropout.normalize_dropout_relu_cupy(x, mean, rstd, gamma, beta, dropout_rate, seed,
                                                   seed_counter), mean, rstd
    y = _util.launch_elementwise(_CUPY_NORMALIZE, x, mean, rstd, gamma, beta, bool(relu))
    return y, mean, rstd


def forward_infer_cupy(x, gamma, beta, running_mean, running_var, epsilon, relu=False):
    """CuPy forward_infer: y from the running statistics."""
    _util.require_cupy("forward_infer_cupy")
    _check("forward_infer_cupy", "cupy", x, gamma, beta,
           {"running_mean": running_mean, "running_var": running_var})
    rstd = 1.0 / _util.cupy.sqrt(running_var + x.dtype.type(epsilon))
    return _util.launch_elementwise(_CUPY_NORMALIZE, x, running_mean, rstd, gamma, beta, bool(relu))


def backward_cupy(dy, x, gamma, beta, mean, rstd, relu=False, gate=None, gate_scale=1.0, dgamma=None, dbeta=None):
    """CuPy backward: returns (dx, dgamma, dbeta); deterministic (no atomics)."""
    _util.require_cupy("backward_cupy")
    N, C = _check("backward_cupy", "cupy", x, gamma, beta, {"mean": mean, "rstd": rstd},
                  {"dy": dy, **({} if gate is None else {"gate": gate})})
    cupy = _util.cupy
    threads, col_blocks, rows_per_split, splits = _cupy_splits(N, C)
    part_dgamma = cupy.empty((splits, C), x.dtype)
    part_dbeta = cupy.empty((splits, C), x.dtype)
    kernel = _util.cupy_function(_CUPY_BACKWARD_PARTIAL, x.dtype)
    gate_or_dy = gate if gate is not None else dy  # read only when gated
    scale = x.dtype.type(gate_scale)
    kernel((col_blocks, splits), (threads,), (dy, x, mean, rstd, gamma, beta, gate_or_dy, part_dgamma, part_dbeta,
                                              np.int64(N), np.int64(C), np.int64(rows_per_split),
                                              np.int32(bool(relu)), np.int32(gate is not None), scale))
    dgamma = part_dgamma.sum(axis=0, out=None if dgamma is None else _checked_out("backward_cupy", "dgamma", dgamma, x))
    dbeta = part_dbeta.sum(axis=0, out=None if dbeta is None else _checked_out("backward_cupy", "dbeta", dbeta, x))
    dx = _util.launch_elementwise(_CUPY_BACKWARD_DX, dy, x, mean, rstd, gamma, beta, dgamma, dbeta, N, bool(relu),
                                   gate_or_dy, scale, gate is not None)
    return dx, dgamma, dbeta
