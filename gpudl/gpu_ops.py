"""Op tables of the GPU kernels, field for field the same as backend.numpy_ops().

    triton_ops(): the Triton launchers (CuPy arrays on a GPU; NumPy arrays on the CPU
                  when TRITON_INTERPRET=1 was set before triton was imported)
    cupy_ops():   the CuPy kernels (CuPy arrays)
Each launcher has the signature and return convention of its NumPy reference.
"""

from types import SimpleNamespace


def _ops(suffix):
    from gpudl.kernels import batchnorm, dropout, optimizer_updates, softmax_cross_entropy

    def pick(module, name):
        return getattr(module, name + suffix)

    return SimpleNamespace(
        batchnorm_forward_train=pick(batchnorm, "forward_train"),
        batchnorm_forward_infer=pick(batchnorm, "forward_infer"),
        batchnorm_backward=pick(batchnorm, "backward"),
        dropout=pick(dropout, "dropout"),
        softmax=pick(softmax_cross_entropy, "softmax"),
        softmax_cross_entropy=pick(softmax_cross_entropy, "softmax_cross_entropy"),
        sgd=pick(optimizer_updates, "sgd"),
        sgd_momentum=pick(optimizer_updates, "sgd_momentum"),
        ema_momentum=pick(optimizer_updates, "ema_momentum"),
        rmsprop=pick(optimizer_updates, "rmsprop"),
        adam=pick(optimizer_updates, "adam"),
    )


def triton_ops():
    """The op table of the Triton kernels in gpudl.kernels."""
    return _ops("_triton")


def cupy_ops():
    """The op table of the CuPy kernels in gpudl.kernels."""
    return _ops("_cupy")
