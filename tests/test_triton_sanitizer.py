"""The Triton interpreter's bounds checker (gpudl/tools/triton_sanitizer.py): every active lane
of every tl.load and tl.store must fall inside the tensor argument its pointer derives from (or,
for a pointer made from an integer, one argument per call site), and the CPU launchers'
outputs start as NaN. Needs TRITON_INTERPRET=1 (tests/conftest.py sets it on a
machine without a GPU)."""

import os

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the bounds checker patches the Triton interpreter (TRITON_INTERPRET=1)", allow_module_level=True)
torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from gpudl.kernels import _triton_util, dropout  # noqa: E402
from gpudl.tools import triton_sanitizer  # noqa: E402
from gpudl.tools.triton_sanitizer import SanitizerError  # noqa: E402

triton_sanitizer.install()


@triton.jit
def _copy_kernel(src_ptr, out_ptr, n, SHIFT: tl.constexpr, MASK_LOAD: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    if MASK_LOAD:
        x = tl.load(src_ptr + offsets + SHIFT, mask=mask, other=0.0)
    else:
        x = tl.load(src_ptr + offsets + SHIFT)
    tl.store(out_ptr + offsets, x, mask=mask)


@triton.jit
def _store_kernel(out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, tl.full((BLOCK,), 1.0, tl.float32), mask=offsets <= n)  # one too many


def copy(src, shift=0, mask_load=True, n=None):
    out = np.zeros_like(src)
    n = src.size if n is None else n
    _copy_kernel[(triton.cdiv(n, 64),)](torch.from_numpy(src), torch.from_numpy(out), n, SHIFT=shift,
                                         MASK_LOAD=mask_load, BLOCK=64)
    return out


def test_masked_loads_inside_the_tensors_pass():
    src = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    assert np.array_equal(copy(src), src)


def test_an_unmasked_load_past_the_end_is_caught_naming_kernel_program_and_argument():
    src = np.random.default_rng(1).standard_normal(100).astype(np.float32)
    with pytest.raises(Exception, match=r"_copy_kernel: program \(1, 0, 0\): tl.load lane \(36,\) reads or writes "
                                        r"4 bytes at 0 bytes past the end of `src_ptr` \(shape \(100,\), float32\) "
                                        r"\(28 of 64 active lanes"):
        copy(src, mask_load=False)


def test_a_masked_load_shifted_by_one_is_caught():
    src = np.ones(128, np.float64)
    with pytest.raises(Exception, match=r"program \(1, 0, 0\): tl.load lane \(63,\) .* 0 bytes past the end of "
                                        r"`src_ptr`"):
        copy(src, shift=1)
    with pytest.raises(Exception, match=r"program \(0, 0, 0\): tl.load lane \(0,\) .* 8 bytes before the start"):
        copy(src, shift=-1)


def test_a_store_one_past_the_end_is_caught():
    out = np.zeros(100, np.float32)
    with pytest.raises(Exception, match=r"_store_kernel: program \(1, 0, 0\): tl.store lane \(36,\) .* past the end "
                                        r"of `out_ptr`"):
        _store_kernel[(2,)](torch.from_numpy(out), 100, BLOCK=64)


def test_a_read_inside_another_argument_is_not_a_false_alarm():
    # a pointer argument that aliases another (the launchers pass `src` for unused pointers)
    src = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    _copy_kernel[(1,)](torch.from_numpy(src), torch.from_numpy(out), 64, SHIFT=0, MASK_LOAD=False, BLOCK=64)
    assert np.array_equal(out, src)


def test_launcher_outputs_start_as_nan_so_an_unwritten_element_shows(monkeypatch):
    assert np.isnan(_triton_util.xp_of(np.zeros(3)).empty(4)).all()
    assert np.isnan(_triton_util.xp_of(np.zeros(3)).empty_like(np.zeros(2, np.float32))).all()
    # a dropout grid one program short leaves the last elements unwritten: NaN, not stale memory
    monkeypatch.setattr(_triton_util, "cdiv", lambda a, b: max(1, a // b))
    x = np.ones(5000, np.float32)
    y = dropout.dropout_triton(x, 0.5, 7)
    assert np.isnan(y[-1]) and not np.isnan(y[:1024]).any()


# Provenance: a pointer is checked against the argument it derives from, not any argument.

@triton.jit
def _add_kernel(x_ptr, y_ptr, out_ptr, n, MASK_X: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask if MASK_X else None)
    tl.store(out_ptr + offsets, x + tl.load(y_ptr + offsets, mask=mask), mask=mask)


def adjacent_views(n, rng):
    """x and y: the two halves of one buffer, so a read past the end of x lands inside y."""
    buffer = torch.from_numpy(rng.standard_normal(2 * n).astype(np.float32))
    return buffer[:n], buffer[n:]


def _line_of(kernel, text):
    """The source line (in this file) of the first line of `kernel` containing `text`."""
    import inspect

    lines, first = inspect.getsourcelines(kernel.fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_a_load_past_the_end_of_x_into_the_adjacent_y_is_caught_naming_x():
    x, y = adjacent_views(100, np.random.default_rng(2))
    out = torch.zeros(100)
    with pytest.raises(Exception, match=r"_add_kernel: program \(1, 0, 0\): tl.load lane \(36,\) reads or writes 4 "
                                        r"bytes at 0 bytes past the end of `x_ptr` \(shape \(100,\), float32\) \(28 of "
                                        r"64 active lanes outside `x_ptr`, the argument its pointer derives from\) at "
                                        rf"test_triton_sanitizer.py:{_line_of(_add_kernel, 'x = tl.load')}"):
        _add_kernel[(2,)](x, y, out, 100, MASK_X=False, BLOCK=64)
    _add_kernel[(2,)](x, y, out, 100, MASK_X=True, BLOCK=64)  # the masked kernel passes and is right
    assert torch.equal(out, x + y)


def test_an_in_place_launch_passing_one_array_twice_passes():
    t = torch.from_numpy(np.random.default_rng(3).standard_normal(100).astype(np.float32))
    expected = t.clone()
    by_site = triton_sanitizer.accesses["by call site"]
    _copy_kernel[(2,)](t, t, 100, SHIFT=0, MASK_LOAD=True, BLOCK=64)
    assert torch.equal(t, expected)
    assert triton_sanitizer.accesses["by call site"] == by_site  # every access was checked by its argument


@triton.jit
def _pick_kernel(x_ptr, y_ptr, out_ptr, n, Y_FROM: tl.constexpr, BY_ADDRESS: tl.constexpr, BLOCK: tl.constexpr):
    # programs before Y_FROM read x, the others y; BY_ADDRESS rebuilds the pointer from an integer
    pid = tl.program_id(0)
    offsets = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    if BY_ADDRESS:
        src = tl.where(pid < Y_FROM, x_ptr.to(tl.int64), y_ptr.to(tl.int64)).to(tl.pointer_type(tl.float32))
    else:
        src = tl.where(pid < Y_FROM, x_ptr, y_ptr)
    tl.store(out_ptr + offsets, tl.load(src + offsets, mask=mask), mask=mask)


def test_a_pointer_picked_by_tl_where_keeps_the_argument_it_picked():
    x, y = adjacent_views(128, np.random.default_rng(4))
    out = torch.zeros(128)
    by_site = triton_sanitizer.accesses["by call site"]
    _pick_kernel[(2,)](x, y, out, 128, Y_FROM=1, BY_ADDRESS=False, BLOCK=64)
    assert torch.equal(out[:64], x[:64]) and torch.equal(out[64:], y[64:])
    assert triton_sanitizer.accesses["by call site"] == by_site
    short_y, long_x = torch.from_numpy(np.zeros(192, np.float32)).split([64, 128])  # x right after y
    with pytest.raises(Exception, match=r"_pick_kernel: program \(1, 0, 0\): tl.load lane \(0,\) reads or writes 4 "
                                        r"bytes at 0 bytes past the end of `y_ptr` \(shape \(64,\), float32\) \(64 of "
                                        r"64 active lanes outside `y_ptr`"):
        _pick_kernel[(2,)](long_x, short_y, out, 128, Y_FROM=1, BY_ADDRESS=False, BLOCK=64)


def test_a_pointer_made_from_an_integer_is_checked_by_call_site():
    x, y = adjacent_views(128, np.random.default_rng(5))
    out = torch.zeros(128)
    by_site = triton_sanitizer.accesses["by call site"]
    _pick_kernel[(2,)](x, y, out, 128, Y_FROM=2, BY_ADDRESS=True, BLOCK=64)  # every program reads x
    assert torch.equal(out, x)
    assert triton_sanitizer.accesses["by call site"] == by_site + 2
    line = _line_of(_pick_kernel, "tl.store(out_ptr")
    with pytest.raises(Exception, match=rf"_pick_kernel: program \(1, 0, 0\): tl.load at "
                                        rf"test_triton_sanitizer.py:{line} addresses `y_ptr` \(shape \(128,\), "
                                        r"float32\), where the programs before it \(from \(0, 0, 0\)\) addressed "
                                        r"`x_ptr` \(shape \(128,\), float32\)"):
        _pick_kernel[(2,)](x, y, out, 128, Y_FROM=1, BY_ADDRESS=True, BLOCK=64)


def test_a_call_site_whose_lanes_span_two_arguments_is_caught():
    x, y = adjacent_views(100, np.random.default_rng(6))
    out = torch.zeros(128)
    with pytest.raises(Exception, match=r"_pick_kernel: program \(0, 0, 0\): tl.load at "
                                        r"test_triton_sanitizer.py:\d+ addresses two arguments with one pointer not "
                                        r"derived from either: lane \(0,\) in `x_ptr` \(shape \(100,\), float32\), "
                                        r"lane \(100,\) in `y_ptr`"):
        _pick_kernel[(1,)](x, y, out, 128, Y_FROM=1, BY_ADDRESS=True, BLOCK=128)


def test_a_shipped_kernels_loads_and_stores_are_all_checked_against_their_argument():
    counts = dict(triton_sanitizer.accesses)
    x = np.random.default_rng(7).standard_normal(5000).astype(np.float32)
    dropout.dropout_triton(x, 0.5, 7)
    assert triton_sanitizer.accesses["by argument"] > counts["by argument"]
    assert triton_sanitizer.accesses["by call site"] == counts["by call site"]


@triton.jit
def _load_by_address(address, offsets, mask):
    return tl.load(address.to(tl.pointer_type(tl.float32)) + offsets, mask=mask)


@triton.jit
def _sum_by_address_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    total = _load_by_address(x_ptr.to(tl.int64), offsets, mask)
    total += _load_by_address(y_ptr.to(tl.int64), offsets, mask)
    tl.store(out_ptr + offsets, total, mask=mask)


def test_a_helper_called_from_two_lines_is_two_call_sites():
    x, y = adjacent_views(100, np.random.default_rng(8))
    out = torch.zeros(128)
    _sum_by_address_kernel[(2,)](x, y, out, 100, BLOCK=64)  # one helper line reads x, then y: not an alarm
    assert torch.equal(out[:100], x + y)
    helper, caller = _line_of(_load_by_address, "tl.load"), _line_of(_sum_by_address_kernel, "total = ")
    with pytest.raises(Exception, match=rf"_sum_by_address_kernel: program \(0, 0, 0\): tl.load at "
                                        rf"test_triton_sanitizer.py:{helper} \(called from "
                                        rf"test_triton_sanitizer.py:{caller}\) addresses two arguments"):
        _sum_by_address_kernel[(1,)](x, y, out, 128, BLOCK=128)


@triton.jit
def _count_kernel(counts_ptr, keys_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.atomic_add(counts_ptr + tl.load(keys_ptr + offsets, mask=mask), 1, mask=mask)


def test_an_atomic_outside_its_argument_is_caught():
    counts, keys = torch.zeros(8 + 100, dtype=torch.int32).split([8, 100])  # the keys right after the counts
    keys.copy_(torch.from_numpy(np.random.default_rng(9).integers(0, 8, 100).astype(np.int32)))
    _count_kernel[(2,)](counts, keys, 100, BLOCK=64)
    assert np.array_equal(counts.numpy(), np.bincount(keys.numpy(), minlength=8))
    keys[37] = 8  # one past the last count: inside `keys_ptr`, outside `counts_ptr`
    with pytest.raises(Exception, match=r"_count_kernel: program \(0, 0, 0\): tl.atomic_add lane \(37,\) reads or "
                                        r"writes 4 bytes at 0 bytes past the end of `counts_ptr`"):
        _count_kernel[(2,)](counts, keys, 100, BLOCK=64)


@triton.jit
def _claim_kernel(flags_ptr, BLOCK: tl.constexpr):
    # no mask: every lane claims its flag (the interpreter wants blocks, not scalars, to compare and write)
    tl.atomic_cas(flags_ptr + tl.arange(0, BLOCK), tl.zeros((BLOCK,), tl.int32), tl.full((BLOCK,), 1, tl.int32))


def test_an_atomic_compare_and_swap_outside_its_argument_is_caught():
    flags, neighbour = torch.zeros(64 + 64, dtype=torch.int32).split([64, 64])
    _claim_kernel[(1,)](flags, BLOCK=64)
    assert torch.equal(flags, torch.ones(64, dtype=torch.int32))
    with pytest.raises(Exception, match=r"_claim_kernel: program \(0, 0, 0\): tl.atomic_cas lane \(64,\) reads or "
                                        r"writes 4 bytes at 0 bytes past the end of `flags_ptr` .* \(64 of 128 active"):
        _claim_kernel[(1,)](flags, BLOCK=128)  # flags 64 to 127 are `neighbour`, not an argument
    assert torch.equal(neighbour, torch.zeros(64, dtype=torch.int32))


@triton.jit
def _pair_sum_kernel(pair, out_ptr, n, MASK_FIRST: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    mask = offsets < n
    first = tl.load(pair[0] + offsets, mask=mask if MASK_FIRST else None)
    tl.store(out_ptr + offsets, first + tl.load(pair[1] + offsets, mask=mask), mask=mask)


def test_the_tensors_of_a_tuple_argument_are_arguments_of_their_own():
    x, y = adjacent_views(100, np.random.default_rng(10))
    out = torch.zeros(100)
    _pair_sum_kernel[(1,)]((x, y), out, 100, MASK_FIRST=True, BLOCK=128)
    assert torch.equal(out, x + y)
    with pytest.raises(Exception, match=r"_pair_sum_kernel: program \(0, 0, 0\): tl.load lane \(100,\) reads or writes "
                                        r"4 bytes at 0 bytes past the end of `pair\[0\]` \(shape \(100,\), float32\)"):
        _pair_sum_kernel[(1,)]((x, y), out, 100, MASK_FIRST=False, BLOCK=128)


@triton.jit
def _descriptor_copy_kernel(x_desc, out_ptr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, x_desc.load([tl.program_id(0) * BLOCK]))


def test_a_tensor_descriptors_loads_are_checked_against_its_base():
    from triton.tools.tensor_descriptor import TensorDescriptor

    x, out = adjacent_views(64, np.random.default_rng(11))
    _descriptor_copy_kernel[(4,)](TensorDescriptor.from_tensor(x, [16]), out, BLOCK=16)
    assert torch.equal(out, x)
    too_long = TensorDescriptor(x, [128], [1], [16])  # a shape past the end of its base: reads `out`
    with pytest.raises(Exception, match=r"_descriptor_copy_kernel: program \(4, 0, 0\): tl.load lane \(0,\) reads or "
                                        r"writes 4 bytes at 0 bytes past the end of `x_desc.base` \(shape \(64,\)"):
        _descriptor_copy_kernel[(5,)](too_long, out, BLOCK=16)


@triton.jit
def _sum_kernel(x_ptr, out_ptr, n, MODE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offsets = pid * BLOCK + tl.arange(0, BLOCK)
    total = tl.sum(tl.load(x_ptr + offsets, mask=offsets < n, other=0.0), axis=0)
    if MODE == 0:  # a partial sum per program
        tl.store(out_ptr + pid, total)
    elif MODE == 1:  # every program adds into out[0]: right one program at a time, lost updates on a GPU
        tl.store(out_ptr, tl.load(out_ptr) + total)
    else:  # a running sum: each program reads the one before's (unordered on a GPU)
        before = tl.load(out_ptr + pid - 1, mask=pid > 0, other=0.0)
        tl.store(out_ptr + pid, before + total)


@triton.jit
def _last_writer_kernel(out_ptr, BLOCK: tl.constexpr):
    tl.store(out_ptr + tl.arange(0, BLOCK), tl.full((BLOCK,), 1.0, tl.float32) * tl.program_id(0))


def block_sums(mode):
    x = np.random.default_rng(6).standard_normal(200).astype(np.float32)
    out = np.zeros(4, np.float32)
    _sum_kernel[(4,)](torch.from_numpy(x), torch.from_numpy(out), 200, MODE=mode, BLOCK=64)
    return x, out


def test_programs_writing_their_own_elements_pass_the_race_check():
    x, out = block_sums(mode=0)
    np.testing.assert_allclose(out, [x[i * 64:(i + 1) * 64].sum() for i in range(4)], rtol=1e-5)


def test_an_accumulation_across_programs_without_atomics_is_a_race():
    # the interpreter runs the programs one after another, so the sum itself comes out right
    with pytest.raises(SanitizerError, match=r"_sum_kernel: race between programs: program \(1, 0, 0\) stores to "
                                             r"element 0 of `out_ptr` \(shape \(4,\), float32\), which program "
                                             r"\(0, 0, 0\) stores"):
        block_sums(mode=1)


def test_a_program_reading_what_another_stores_is_a_race():
    with pytest.raises(SanitizerError, match=r"_sum_kernel: race between programs: program \(1, 0, 0\) reads "
                                             r"element 0 of `out_ptr` \(shape \(4,\), float32\), which program "
                                             r"\(0, 0, 0\) stores"):
        block_sums(mode=2)


def test_two_programs_storing_one_element_is_a_race():
    out = np.zeros(8, np.float32)
    with pytest.raises(SanitizerError, match=r"_last_writer_kernel: race between programs: program \(1, 0, 0\) "
                                             r"stores to element 0 of `out_ptr`"):
        _last_writer_kernel[(2,)](torch.from_numpy(out), BLOCK=8)


def test_an_in_place_kernel_reading_and_writing_its_own_elements_passes_the_race_check():
    x = np.random.default_rng(7).standard_normal(100).astype(np.float32)
    y = torch.from_numpy(x.copy())
    _copy_kernel[(2,)](y, y, 100, SHIFT=0, MASK_LOAD=True, BLOCK=64)  # program p reads and writes block p
    assert np.array_equal(y.numpy(), x)
