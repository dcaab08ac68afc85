"""Search spaces that say how to sample (the course: "use an appropriate scale").

Each continuous distribution is uniform on its own scale t = warp(x):

    Uniform(low, high)             t = x                 (units, dropout rate)
    LogUniform(low, high)          t = log10(x)          (learning rate: 1e-4..1 -> r in [-4, 0], x = 10**r)
    OneMinusLogUniform(low, high)  t = log10(1 - x)      (averaging beta: 0.9..0.999 -> 1 - beta = 10**r, r in [-3, -1])

so a draw is x = unwarp(low_t + (high_t - low_t) * u), u ~ U[0, 1), and zooming
(coarse to fine) narrows [low_t, high_t] around the best trials on that same scale.
IntUniform draws integers (optionally log-spaced), Choice picks among values.
Any distribution may be conditional: `IntUniform(16, 256, when=("layers", ">=", 3))`
is drawn only in trials whose `layers` is at least 3.
"""

import math
import operator

import numpy as np

from gpudl.errors import invalid_value

CONDITIONS = {"==": operator.eq, "!=": operator.ne, ">=": operator.ge, ">": operator.gt,
              "<=": operator.le, "<": operator.lt, "in": lambda value, options: value in options}
ZOOM_MARGIN = 0.25  # a zoomed range reaches a quarter of its width beyond the best trials on each side


class Distribution:
    """Base of the distributions: sampling, membership, zoom and (de)serialization."""

    scale = "linear"

    def __init__(self, when=None):
        if when is not None:
            if (not isinstance(when, (tuple, list)) or len(when) != 3 or not isinstance(when[0], str)
                    or when[1] not in CONDITIONS):
                raise invalid_value("when", f"a tuple (parameter, operator, value) with operator in "
                                    f"{sorted(CONDITIONS)}", when, type(self).__name__)
            when = (when[0], when[1], list(when[2]) if when[1] == "in" else when[2])
        self.when = None if when is None else tuple(when)

    def active(self, params):
        """True when this parameter is drawn in a trial whose earlier draws are `params`."""
        if self.when is None:
            return True
        parent, op, value = self.when
        return parent in params and CONDITIONS[op](params[parent], value)

    def get_config(self):
        return {"class_name": type(self).__name__, **self._arguments(),
                **({"when": list(self.when)} if self.when else {})}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items() if key != "class_name")
        return f"{type(self).__name__}({arguments})"


class Uniform(Distribution):
    """Uniform on [low, high]."""

    def __init__(self, low, high, when=None):
        super().__init__(when)
        self.low, self.high = _check_range(type(self).__name__, low, high)
        self._check_domain()

    def _check_domain(self):
        pass

    def warp(self, x):
        return x

    def unwarp(self, t):
        return t

    def sample(self, rng):
        t_low, t_high = sorted((self.warp(self.low), self.warp(self.high)))
        return float(np.clip(self.unwarp(t_low + (t_high - t_low) * rng.random()), self.low, self.high))

    def contains(self, value):
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def zoomed(self, values):
        """The range spanned by `values` on this scale, widened by ZOOM_MARGIN of its width (or of a
        tenth of the full range, when the values coincide) and clipped to the current range."""
        low_t, high_t = self.warp(self.low), self.warp(self.high)
        ts = [self.warp(v) for v in values]
        width = max(max(ts) - min(ts), 0.1 * abs(high_t - low_t) / (1 + 2 * ZOOM_MARGIN))
        lo, hi = min(ts) - ZOOM_MARGIN * width, max(ts) + ZOOM_MARGIN * width
        lo_x, hi_x = sorted((self.unwarp(lo), self.unwarp(hi)))
        return type(self)(max(self.low, lo_x), min(self.high, hi_x), when=self.when)

    def _arguments(self):
        return {"low": self.low, "high": self.high}


class LogUniform(Uniform):
    """log10(x) uniform on [log10(low), log10(high)]; low > 0."""

    scale = "log"

    def _check_domain(self):
        if self.low <= 0:
            raise invalid_value("low", "a positive number (the log of low must exist)", self.low, "LogUniform")

    def warp(self, x):
        return math.log10(x)

    def unwarp(self, t):
        return 10.0 ** t


class OneMinusLogUniform(Uniform):
    """log10(1 - x) uniform on [log10(1 - high), log10(1 - low)]; 0 <= low < high < 1 (betas)."""

    scale = "one_minus_log"

    def _check_domain(self):
        if not 0 <= self.low < self.high < 1:
            raise invalid_value("low, high", "0 <= low < high < 1 (1 - x must be positive)",
                                (self.low, self.high), "OneMinusLogUniform")

    def warp(self, x):
        return math.log10(1.0 - x)

    def unwarp(self, t):
        return 1.0 - 10.0 ** t


class IntUniform(Distribution):
    """An integer in [low, high], each equally likely, or with log=True log-uniform
    (floor of a LogUniform draw on [low, high + 1), e.g. hidden units 16..512)."""

    def __init__(self, low, high, log=False, when=None):
        super().__init__(when)
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or int(value) != value:
                raise invalid_value(name, "an integer", value, "IntUniform")
        self.low, self.high = (int(v) for v in _check_range("IntUniform", low, high, allow_equal=True))
        self.log = bool(log)
        if self.log and self.low <= 0:
            raise invalid_value("low", "a positive integer when log=True", low, "IntUniform")
        self.scale = "log" if self.log else "linear"

    def sample(self, rng):
        if not self.log:
            return int(rng.integers(self.low, self.high + 1))
        value = math.floor(LogUniform(self.low, self.high + 1).sample(rng))
        return min(value, self.high)

    def contains(self, value):
        return isinstance(value, (int, np.integer)) and self.low <= value <= self.high

    def zoomed(self, values):
        if self.low == self.high:
            return self
        outer = (LogUniform if self.log else Uniform)(self.low, self.high + (1 if self.log else 0))
        inner = outer.zoomed(values)
        return IntUniform(math.floor(inner.low), min(self.high, math.ceil(inner.high)), log=self.log, when=self.when)

    def _arguments(self):
        return {"low": self.low, "high": self.high, "log": self.log}


class Choice(Distribution):
    """One of `values` (numbers, strings or booleans), each equally likely."""

    scale = "categorical"

    def __init__(self, values, when=None):
        super().__init__(when)
        values = list(values)
        if not values or len(set(map(repr, values))) != len(values):
            raise invalid_value("values", "a non-empty list of distinct values", values, "Choice")
        for value in values:
            if not isinstance(value, (bool, int, float, str)):
                raise invalid_value("values", "numbers, strings or booleans", value, "Choice")
        self.values = values

    def sample(self, rng):
        return self.values[int(rng.integers(len(self.values)))]

    def contains(self, value):
        return value in self.values

    def zoomed(self, values):
        """The values the best trials took, in their original order."""
        return Choice([v for v in self.values if v in values], when=self.when)

    def _arguments(self):
        return {"values": self.values}


DISTRIBUTIONS = {cls.__name__: cls for cls in (Uniform, LogUniform, OneMinusLogUniform, IntUniform, Choice)}


class SearchSpace:
    """Named distributions, drawn in order; a conditional one names an earlier parameter.

        space = SearchSpace({
            "learning_rate": LogUniform(1e-4, 1.0),
            "beta_1": OneMinusLogUniform(0.9, 0.999),
            "layers": IntUniform(1, 3),
            "units_3": IntUniform(16, 256, log=True, when=("layers", ">=", 3)),
        })
    """

    def __init__(self, distributions):
        if isinstance(distributions, SearchSpace):
            distributions = distributions.distributions
        if not isinstance(distributions, dict) or not distributions:
            raise invalid_value("space", "a non-empty dict of name -> distribution", distributions, "SearchSpace")
        seen = []
        for name, distribution in distributions.items():
            if not isinstance(distribution, Distribution):
                raise invalid_value(name, f"a distribution ({', '.join(DISTRIBUTIONS)})", distribution,
                                    "SearchSpace")
            if distribution.when is not None and distribution.when[0] not in seen:
                raise ValueError(f"SearchSpace: parameter `{name}` is conditional on `{distribution.when[0]}`, "
                                 f"which must be defined before it; defined so far: {seen}.")
            seen.append(name)
        self.distributions = dict(distributions)

    def sample(self, rng):
        """One point: {name: value} for the active parameters, drawn in order."""
        params = {}
        for name, distribution in self.distributions.items():
            if distribution.active(params):
                params[name] = distribution.sample(rng)
        return params

    def zoom(self, points):
        """The space narrowed around `points` (the best trials' parameters), each parameter on its
        own scale and inside its current range; a conditional parameter that none of the points
        used keeps its range."""
        narrowed = {}
        for name, distribution in self.distributions.items():
            values = [p[name] for p in points if name in p]
            narrowed[name] = distribution.zoomed(values) if values else distribution
        return SearchSpace(narrowed)

    def grid(self, points_per_parameter):
        """Evenly spaced values on each parameter's own scale (all values of a Choice)."""
        axes = {}
        for name, distribution in self.distributions.items():
            if isinstance(distribution, Choice):
                axes[name] = list(distribution.values)
            elif isinstance(distribution, IntUniform):
                outer = (LogUniform if distribution.log else Uniform)(distribution.low, distribution.high)
                axes[name] = sorted({int(round(v)) for v in _even(outer, points_per_parameter)})
            else:
                axes[name] = _even(distribution, points_per_parameter)
        return axes

    def differences(self, other):
        """Human-readable lines saying how `other` differs from this space (empty when equal)."""
        lines = []
        for name in self.distributions.keys() | other.distributions.keys():
            mine, theirs = self.distributions.get(name), other.distributions.get(name)
            if mine != theirs:
                lines.append(f"{name}: {mine!r} here, {theirs!r} there")
        if not lines and list(self.distributions) != list(other.distributions):
            lines.append(f"order: {list(self.distributions)} here, {list(other.distributions)} there")
        return sorted(lines)

    def get_config(self):
        return {name: distribution.get_config() for name, distribution in self.distributions.items()}

    @classmethod
    def from_config(cls, config):
        distributions = {}
        for name, entry in config.items():
            entry = dict(entry)
            class_name = entry.pop("class_name")
            if class_name not in DISTRIBUTIONS:
                raise ValueError(f"Unknown distribution {class_name!r} for parameter `{name}`.")
            distributions[name] = DISTRIBUTIONS[class_name](**entry)
        return cls(distributions)

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and not self.differences(other)

    def __repr__(self):
        return "SearchSpace({\n" + "".join(f"    {n!r}: {d!r},\n" for n, d in self.distributions.items()) + "})"


def _even(distribution, count):
    """`count` values evenly spaced on the distribution's own scale, ends included."""
    low_t, high_t = distribution.warp(distribution.low), distribution.warp(distribution.high)
    if count == 1:
        return [float(distribution.unwarp((low_t + high_t) / 2))]
    return [float(distribution.unwarp(t)) for t in np.linspace(low_t, high_t, count)]


def _check_range(where, low, high, allow_equal=False):
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
            raise invalid_value(name, "a finite number", value, where)
    if high < low or (high == low and not allow_equal):
        raise ValueError(f"{where}: the range is {'inverted' if high < low else 'empty'}: low={low!r}, "
                         f"high={high!r}. Expected low < high.")
    return float(low), float(high)
