"""Optimizer updates, in place over flat parameter buffers (the arena).

Host scalars (learning rate, bias corrections) are computed once in float64 and
passed as Python floats, so they apply in the buffers' own dtype.
    sgd:           w -= lr * g
    sgd_momentum:  v = mu * v + g;  w -= lr * v   (nesterov: w -= lr * (g + mu * v))
                   (PyTorch's form; equal to Keras's v = mu*v - lr*g; w += v at constant lr)
    ema_momentum:  v = beta * v + (1 - beta) * g;  w -= lr * v       (the course's form)
    rmsprop:       s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)
    adam:          m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
                   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
                   (AdamW first decays w *= 1 - lr * weight_decay)
"""

import math

import numpy as np


def sgd(param, grad, lr):
    param -= lr * grad


def sgd_momentum(param, grad, velocity, lr, momentum, nesterov=False):
    velocity *= momentum
    velocity += grad
    if nesterov:
        param -= lr * (grad + momentum * velocity)
    else:
        param -= lr * velocity


def ema_momentum(param, grad, velocity, lr, beta):
    velocity *= beta
    velocity += (1.0 - beta) * grad
    param -= lr * velocity


def rmsprop(param, grad, mean_square, lr, rho, epsilon):
    mean_square *= rho
    mean_square += (1.0 - rho) * np.square(grad)
    param -= lr * grad / (np.sqrt(mean_square) + epsilon)


def adam(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay=0.0):
    """One Adam (AdamW when weight_decay > 0) step; `step` counts from 1."""
    if weight_decay:
        param *= 1.0 - lr * weight_decay
    m *= beta1
    m += (1.0 - beta1) * grad
    v *= beta2
    v += (1.0 - beta2) * np.square(grad)
    step_size = lr / (1.0 - beta1**step)
    sqrt_bias_correction2 = math.sqrt(1.0 - beta2**step)
    denom = np.sqrt(v)
    denom /= sqrt_bias_correction2
    denom += epsilon
    param -= step_size * (m / denom)
