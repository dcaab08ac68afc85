"""gpudl.tools.count: the recording stand-in for the device counts what a step launches."""

import numpy as np
import pytest

from gpudl.tools import count


def test_device_array_ops_are_launches_with_their_bytes_and_views_are_free():
    with count.recording("cupy") as recorder:
        xp = count.RECORDING_CUPY
        a = xp.asarray(np.ones((4, 8), np.float32))
        b = xp.asarray(np.ones((8, 3), np.float32))
        assert recorder.uploads == 2 and recorder.upload_bytes == 4 * 8 * 4 + 8 * 3 * 4
        view = a.T.reshape(-1)[::2]
        assert recorder.launches == []
        c = a @ b
        total = (c + 1).sum(axis=0)
        assert isinstance(total, count.DeviceArray)
        assert [launch.kind for launch in recorder.launches] == ["gemm", "array", "array"]
        gemm, add, reduce = recorder.launches
        assert gemm.flops == 2 * 4 * 8 * 3 and gemm.read == (32 + 24) * 4 and gemm.written == 12 * 4
        assert (add.read, add.written, add.elements_written) == (48, 48, 12)
        assert (reduce.name, reduce.read, reduce.written) == ("add.reduce", 48, 12)
        assert recorder.syncs == 0
        assert float(total[0]) == 36.0 and np.array_equal(total.get(), [36.0, 36.0, 36.0])  # 4 rows of 8 + 1
        assert recorder.syncs == 2
        assert view.shape == (16,)


def test_index_reductions_are_launches():
    """ndarray.argmax/argmin reach neither __array_ufunc__ nor __array_function__ (a metric's argmax
    went uncounted): each is one launch reading the array and writing the indices."""
    with count.recording("cupy") as recorder:
        x = count.RECORDING_CUPY.asarray(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], np.float32))
        best, worst = x.argmax(axis=-1), x.argmin()
        assert isinstance(best, count.DeviceArray) and np.array_equal(best.view(np.ndarray), [1, 0])
        assert int(worst) == 4
        assert [(launch.name, launch.read, launch.elements_written) for launch in recorder.launches] == [
            ("argmax", 24, 2), ("argmin", 24, 1)]


def test_sparse_accuracy_compares_integer_labels_without_a_cast():
    from gpudl.frontend import metrics

    with count.recording("cupy") as recorder:
        xp = count.RECORDING_CUPY
        scores = xp.asarray(np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.8, 0.1, 0.1]], np.float32))
        values = metrics.sparse_categorical_accuracy(xp.asarray(np.array([0, 2, 1], np.int32)), scores)
        floats = metrics.sparse_categorical_accuracy(xp.asarray(np.array([[0.0], [2.0], [1.0]], np.float32)), scores)
    assert np.array_equal(values.view(np.ndarray), [1, 1, 0]) and np.array_equal(floats.view(np.ndarray), [1, 1, 0])
    assert [launch.name for launch in recorder.launches] == ["argmax", "equal", "astype",  # int32 labels
                                                             "astype", "argmax", "equal", "astype"]  # float labels


def test_fresh_outputs_are_written_not_read_and_in_place_updates_are_both():
    with count.recording("cupy") as recorder:
        xp = count.RECORDING_CUPY
        x = xp.asarray(np.arange(6.0))
        y = xp.empty_like(x)
        np.multiply(x, 2.0, out=y)
        x += y
        first, second = recorder.launches
        assert (first.read, first.written) == (48, 48)
        assert (second.read, second.written) == (96, 48)
        assert np.array_equal(x.get(), 3 * np.arange(6.0))


def test_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="backend='numpy'"):
        with count.recording("numpy"):
            pass


@pytest.mark.parametrize("gpu", ["triton", "cupy"])
def test_benchmark_mlp_step_one_pass_per_block_and_bytes_within_a_quarter_of_the_minimum(gpu):
    import os

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("counting runs the Triton interpreter")
    results = count.run_count((gpu,))
    row = results["backends"][gpu]
    assert len(row["block_passes"]) == 2
    for block in row["block_passes"]:
        assert (block["forward_passes"], block["backward_passes"]) == (1, 1)
    assert row["by_kind"]["gemm"] == 8  # 3 forward, 3 dW, 2 dX
    assert row["syncs"] == 0 and row["host_operands"] == 0  # no host read, no host array CuPy would refuse
    assert 1.0 <= row["bytes_over_minimum"] <= 1.25
    # the launches counted when the loss mean became one reduction: a cut that comes back fails here
    assert row["launches"] <= {"triton": 34, "cupy": 36}[gpu]
    names = [launch["name"] for launch in row["per_launch"]]
    loss_kernel = names.index({"triton": "_softmax_cross_entropy_kernel", "cupy": "softmax_xent"}[gpu])
    after_loss = [(launch["name"], launch["where"]) for launch in row["per_launch"][loss_kernel + 1:loss_kernel + 3]]
    assert after_loss[0] == ("mean", "")  # then the last Dense's backward: the mean is one launch
    assert after_loss[1][1].startswith("dense") and after_loss[1][1].endswith(" backward")


def test_weight_penalties_and_global_clipping_launch_no_addition_of_zero():
    import gpudl
    from gpudl.layers import Dense

    with count.recording("cupy") as recorder:
        model = gpudl.Sequential([gpudl.Input((6,)), Dense(4, kernel_regularizer=gpudl.regularizers.L2(0.01)),
                                  Dense(3, kernel_regularizer=gpudl.regularizers.L1L2(0.02, 0.01))], seed=1)
        model.build((None, 6))
        kernels = [model.layers[0].kernel.value, model.layers[1].kernel.value]
        start = len(recorder.launches)
        penalty = model.regularization_loss()
        names = [launch.name for launch in recorder.launches[start:]]
        # L2: square, sum, astype, multiply; L1L2: abs, sum, astype, multiply, the same for L2, add; the total: add
        assert names == ["square", "add.reduce", "astype", "multiply", "absolute", "add.reduce", "astype", "multiply",
                         "square", "add.reduce", "astype", "multiply", "add", "add"]
        host = [np.array(k) for k in kernels]
        expected = (0.01 * np.square(host[0]).sum(dtype=np.float32).astype(np.float64)
                    + (0.02 * np.abs(host[1]).sum(dtype=np.float32).astype(np.float64)
                       + 0.01 * np.square(host[1]).sum(dtype=np.float32).astype(np.float64)))
        assert float(penalty) == expected
        optimizer = gpudl.optimizers.SGD(0.1, global_clipnorm=1.0)
        grads = [count.RECORDING_CUPY.asarray(np.full(5, 3.0, np.float32)) for _ in range(2)]
        start = len(recorder.launches)
        optimizer.clip_gradients(grads)
        names = [launch.name for launch in recorder.launches[start:]]
        assert names.count("vdot") == 2 and names.count("add") == 2  # vdot + vdot, then `scale + (norm - norm)`
        np.testing.assert_allclose(grads[0].get(), np.full(5, 3.0 / np.sqrt(90.0)), rtol=1e-6)
