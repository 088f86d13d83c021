"""Model architectures for students and sample models, by the snake_case names that recipes use.

Every builder returns a tf_keras functional model whose last two layers are ``logits`` (Dense, linear) and
``softmax`` (a separate Activation in float32), so distillation can read logits from the layer before the
softmax and mixed precision keeps the output in float32. tf_keras is imported inside the builders:
``import edgeopt.models.zoo`` stays light.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from edgeopt.errors import UsageError, nearest
from edgeopt.models.init import ACTIVATIONS, check_activation, default_initializer
from edgeopt.models.init import check as check_initializer

log = logging.getLogger(__name__)

# MobileNetV2's table (expansion t, output channels c, repeats n, first stride s), cut down for 32x32 inputs:
# with the stride-2 stem the maps go 16 → 16 → 8 → 4 px. A stride-1 stem is ~2x slower to train on a CPU
# for a point or two of accuracy on `shapes`.
MOBILENET_V2_32PX_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 2, 2),
    (6, 64, 2, 2),
    (6, 96, 1, 1),
)


def small_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: float = 1.0,
    depth: int = 2,
    kernel: int = 3,
    dropout: float = 0.0,
    activation: str = "relu",
    init: str | None = None,
    batch_norm: bool = True,
    base_filters: int = 32,
    head: str = "gap",
    downsample: str | Sequence[str] = "pool",
    name: str | None = None,
):
    """``depth`` blocks of Conv → BN → activation (→ 2x2 max-pool while the map is ≥ 4 px), filters doubling
    per block from ``base_filters * width``; then global average pooling (``head="gap"``) or Flatten
    (``head="flatten"``), dropout, logits, softmax. ``downsample="stride"`` halves the map with the block's own
    conv (stride 2) instead of a max-pool: one op and one activation tensor fewer per block, much of a tiny
    model's ops and file bytes (digits w 0.25 int8: 5 ops instead of 7, ~95 B less gzip); a list, one per block."""
    import tf_keras as keras

    shape, num_classes, init = _check_common(input_shape, num_classes, width, depth, dropout, activation, init,
                                             image=True)
    _check(kernel >= 1, f"kernel={kernel}", "use a kernel size of 1 or more")
    _check(base_filters >= 1, f"base_filters={base_filters}", "use 1 or more filters")
    _check(head in ("gap", "flatten"), f"head={head!r}", "use head='gap' or head='flatten'")
    ways = list(downsample) if isinstance(downsample, (list, tuple)) else [downsample] * depth
    _check(len(ways) == depth and all(d in ("pool", "stride") for d in ways), f"downsample={downsample!r}",
           f"use downsample='pool' or 'stride', or a list of {depth} of them (one per block)")
    layers = keras.layers
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    h, w = shape[0], shape[1]
    for i, way in enumerate(ways, start=1):
        filters = max(1, round(base_filters * width * 2 ** (i - 1)))
        halve = min(h, w) >= 4
        x = layers.Conv2D(filters, kernel, strides=2 if halve and way == "stride" else 1, padding="same",
                          use_bias=not batch_norm, kernel_initializer=init, name=f"block{i}_conv")(x)  # fmt: skip
        if batch_norm:
            x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.Activation(activation, name=f"block{i}_{activation}")(x)
        if halve and way == "pool":
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if halve:  # a stride-2 "same" conv rounds up, a 2x2 pool down
            h, w = (h // 2, w // 2) if way == "pool" else (-(-h // 2), -(-w // 2))
    x = layers.GlobalAveragePooling2D(name="gap")(x) if head == "gap" else layers.Flatten(name="flatten")(x)
    outputs = _classifier(keras, x, num_classes, dropout)
    tag = "".join(f"_{d[0]}" for d in ways) if len(set(ways)) > 1 else "_s" * (ways[0] == "stride")
    return keras.Model(inputs, outputs, name=name or f"small_cnn_w{_tag(width)}_d{depth}{tag}")


def mobilenet_v2_like(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    alpha: float = 1.0,
    depth: int | None = None,
    kernel: int = 3,
    expansion: int | None = None,
    blocks: Sequence[Sequence[int]] | None = None,
    stem_filters: int = 32,
    stem_stride: int = 2,
    last_filters: int = 320,
    resolution: int | None = None,
    dropout: float = 0.0,
    activation: str = "relu6",
    init: str | None = None,
    batch_norm: bool = True,
    name: str | None = None,
):
    """MobileNetV2 in miniature: a 3x3 stem (stride ``stem_stride``), inverted residual blocks
    (1x1 expand → 3x3 depthwise → 1x1 linear project, each with BN; Add when the shapes match), a 1x1 conv to
    ``last_filters``, global average pooling, dropout, logits, softmax. ``blocks`` is a table of
    (expansion, channels, repeats, stride); ``expansion`` overrides every row's factor (except a first 1);
    ``depth`` keeps that many inverted residual blocks of the table (``shallower``: fewer ops, for a latency
    floor set by per-op overheads); ``kernel`` is the depthwise kernel size (5 widens the receptive field of a
    shallow net at the same op count).
    Channels scale by ``alpha`` (rounded to multiples of 8, as in MobileNetV2). A stride of 2 applies only
    while the feature map stays ≥ 2 px, so 8x8 inputs work too. ``resolution`` (MobileNet's second multiplier)
    resizes inputs to ``resolution`` × ``resolution`` px first: compute scales with its square."""
    import tf_keras as keras

    shape, num_classes, init = _check_common(input_shape, num_classes, alpha, 1, dropout, activation, init, image=True)
    table = [tuple(int(v) for v in row) for row in (blocks if blocks is not None else MOBILENET_V2_32PX_BLOCKS)]
    _check(
        len(table) >= 1 and all(len(r) == 4 and min(r) >= 1 and r[3] in (1, 2) for r in table),
        f"blocks={blocks}",
        "give rows of (expansion, channels, repeats, stride) with positive integers and stride 1 or 2",
    )
    _check(kernel >= 1, f"kernel={kernel}", "use a depthwise kernel size of 1 or more (3 or 5)")
    if depth is not None:
        table = shallower(table, int(depth))
    _check(expansion is None or expansion >= 1, f"expansion={expansion}", "use an expansion of 1 or more")
    _check(stem_stride in (1, 2), f"stem_stride={stem_stride}", "use 1 (inputs up to ~64 px) or 2")
    _check(stem_filters >= 1 and last_filters >= 1, "stem_filters/last_filters < 1", "use 1 or more filters")
    _check(resolution is None or int(resolution) >= 2, f"resolution={resolution}", "use 2 px or more (or leave it out)")
    layers = keras.layers

    def conv_bn_act(x, filters, kernel, stride, prefix, depthwise=False, with_act=True):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=not batch_norm,
                                       depthwise_initializer=init, name=f"{prefix}_dw")(x)  # fmt: skip
        else:
            x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=not batch_norm,
                              kernel_initializer=init, name=f"{prefix}_conv")(x)  # fmt: skip
        if batch_norm:
            x = layers.BatchNormalization(name=f"{prefix}_{'dw_' if depthwise else ''}bn")(x)
        if with_act:
            x = layers.Activation(activation, name=f"{prefix}_{'dw_' if depthwise else ''}{activation}")(x)
        return x

    inputs = keras.Input(shape=shape, name="input")
    x, size = inputs, min(shape[0], shape[1])
    if resolution is not None and (int(resolution), int(resolution)) != tuple(shape[:2]):
        x, size = layers.Resizing(int(resolution), int(resolution), name="resize")(inputs), int(resolution)
    stem_stride = stem_stride if size >= 4 else 1
    x = conv_bn_act(x, _divisible(stem_filters * alpha), 3, stem_stride, "stem")
    size, channels, block = -(-size // stem_stride), _divisible(stem_filters * alpha), 0
    for t, c, n, s in table:
        t = t if expansion is None or t == 1 else expansion
        out_channels = _divisible(c * alpha)
        for r in range(n):
            block += 1
            stride = s if r == 0 and size >= 4 else 1
            prefix = f"block{block}"
            y = x
            if t != 1:
                y = conv_bn_act(y, channels * t, 1, 1, f"{prefix}_expand")
            y = conv_bn_act(y, None, kernel, stride, prefix, depthwise=True)
            y = conv_bn_act(y, out_channels, 1, 1, f"{prefix}_project", with_act=False)
            x = layers.Add(name=f"{prefix}_add")([x, y]) if stride == 1 and channels == out_channels else y
            channels, size = out_channels, size // stride
    x = conv_bn_act(x, _divisible(last_filters * max(alpha, 1.0)), 1, 1, "head")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = _classifier(keras, x, num_classes, dropout)
    tag = (f"_d{int(depth)}" if depth is not None else "") + (f"_k{kernel}" if kernel != 3 else "")
    tag += f"_r{int(resolution)}" if resolution is not None else ""
    return keras.Model(inputs, outputs, name=name or f"mobilenet_v2_like_a{_tag(alpha)}{tag}")


def shallower(table: Sequence[tuple[int, int, int, int]], depth: int) -> list[tuple[int, int, int, int]]:
    """A block table cut to ``depth`` inverted residual blocks, keeping what shrinks the map and widens the
    channels: first one repeat less of the row with the most repeats (the later row on a tie) until every row
    has one, then the stride-1 rows after the first go (the last first: the widest, most weights), then rows
    from the front. MobileNetV2's 32 px table (8 blocks): depth 5 = one block per row, 3 = the 16, 32 and
    64-channel rows, 1 = the 64-channel row. ``depth`` above the table's block count is refused."""
    rows = [list(r) for r in table]
    total = sum(r[2] for r in rows)
    _check(1 <= depth <= total, f"depth={depth} for a table of {total} blocks",
           f"use a depth from 1 to {total}, or give blocks: for a deeper net")
    while total > depth and any(r[2] > 1 for r in rows):
        i = max(range(len(rows)), key=lambda i: (rows[i][2], i))
        rows[i][2] -= 1
        total -= 1
    while total > depth:
        later_stride1 = [i for i, r in enumerate(rows) if i > 0 and r[3] == 1]
        del rows[later_stride1[-1] if later_stride1 else 0]
        total -= 1
    return [tuple(r) for r in rows]


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: float = 1.0,
    depth: int = 2,
    units: int = 128,
    dropout: float = 0.0,
    activation: str = "relu",
    init: str | None = None,
    batch_norm: bool = True,
    name: str | None = None,
):
    """Flatten, then ``depth`` blocks of Dense(units * width) → BN → activation → dropout; logits, softmax."""
    import tf_keras as keras

    shape, num_classes, init = _check_common(
        input_shape, num_classes, width, depth, dropout, activation, init, image=False
    )
    _check(units >= 1, f"units={units}", "use 1 or more units")
    layers = keras.layers
    inputs = keras.Input(shape=shape, name="input")
    x = layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    for i in range(1, depth + 1):
        x = layers.Dense(max(1, round(units * width)), use_bias=not batch_norm, kernel_initializer=init,
                         name=f"dense{i}")(x)  # fmt: skip
        if batch_norm:
            x = layers.BatchNormalization(name=f"dense{i}_bn")(x)
        x = layers.Activation(activation, name=f"dense{i}_{activation}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense{i}_dropout")(x)
    outputs = _classifier(keras, x, num_classes, 0.0)
    return keras.Model(inputs, outputs, name=name or f"mlp_w{_tag(width)}_d{depth}")


BUILDERS: dict[str, Callable[..., Any]] = {"small_cnn": small_cnn, "mobilenet_v2_like": mobilenet_v2_like, "mlp": mlp}


def build(name: str, input_shape: Sequence[int], num_classes: int, /, **kwargs: Any):
    """Build the registered architecture ``name`` (positional, so ``name=`` can name the model); unknown
    names and options raise UsageError."""
    if name not in BUILDERS:
        raise UsageError(
            f"unknown model '{name}'{nearest(str(name), list(BUILDERS))}", f"use one of: {', '.join(BUILDERS)}"
        )
    allowed = options(name)
    for key in kwargs:
        if key not in allowed:
            raise UsageError(
                f"{name} has no option '{key}'{nearest(key, allowed)}", f"its options are: {', '.join(allowed)}"
            )
    model = BUILDERS[name](input_shape, num_classes, **kwargs)
    log.debug("built %s (%d params) with %s", model.name, model.count_params(), kwargs)
    return model


def options(name: str) -> tuple[str, ...]:
    """The keyword options a builder takes (what a recipe may set)."""
    params = inspect.signature(BUILDERS[name]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


# --- what a recipe says about a model to build (checked without TensorFlow) --------------------------------

# builder options whose values are numbers: the rule each follows (number_problem)
NUMBER_OPTIONS = {"width": "positive", "alpha": "positive", "depth": "positive_int", "kernel": "positive_int",
                  "units": "positive_int", "base_filters": "positive_int", "resolution": "positive_int",
                  "dropout": "fraction"}
_RULES = {"positive": ("must be positive", lambda v: v > 0), "non_negative": ("must be ≥ 0", lambda v: v >= 0),
          "fraction": ("must be in [0, 1)", lambda v: 0 <= v < 1), "unit": ("must be in [0, 1]", lambda v: 0 <= v <= 1)}


def config_error(msg: str) -> PydanticCustomError:
    """A validation error whose message is ours alone (no "Value error, " prefix in the one-line UsageError)."""
    return PydanticCustomError("edgeopt", msg)


def number_problem(key: str, rule: str, values: list) -> str | None:
    """What is wrong with ``values`` for a numeric key under ``rule`` (positive, non_negative, positive_int,
    fraction, unit), or None."""
    if rule == "positive_int":
        bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        return f"{key} must be a positive integer, got {bad[0]!r}" if bad else None
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    msg, ok = _RULES[rule]
    bad = [v for v in values if v not in numbers or not ok(v)]
    return f"{key} {msg}, got {bad[0]!r}" if bad else None


def option_problem(key: str, values: list) -> str | None:
    """What is wrong with the values a builder option is given, or None (unknown keys are checked elsewhere)."""
    if key == "init":
        for v in values:
            try:
                check_initializer(v)
            except UsageError as e:
                return e.problem
    elif key == "activation":
        bad = [v for v in values if v not in ACTIVATIONS]
        if bad:
            return f"unknown activation '{bad[0]}'{nearest(str(bad[0]), sorted(ACTIVATIONS))}"
    elif key in NUMBER_OPTIONS:
        return number_problem(key, NUMBER_OPTIONS[key], values)
    return None


def canonical_init(name):
    """xavier_uniform → glorot_uniform (the names keras knows); an unknown name is left for option_problem."""
    try:
        return check_initializer(name) if isinstance(name, str) else name
    except UsageError:
        return name


class ModelSpec(BaseModel):
    """``{zoo: small_cnn, width: 0.25, ...}`` (a zoo builder and its options) or ``{path: student.keras}``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    zoo: str | None = None
    path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _canonical_init(cls, v):
        if isinstance(v, dict) and isinstance(v.get("init"), str):
            return {**v, "init": canonical_init(v["init"])}
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.zoo is None) == (self.path is None):
            raise config_error("give exactly one of `zoo: <builder>` or `path: <model file>`")
        if self.path is not None and self.options:
            raise config_error(f"options {sorted(self.options)} only apply to a zoo builder, not to a model file")
        if self.zoo is not None:
            if self.zoo not in BUILDERS:
                raise config_error(f"unknown zoo model '{self.zoo}'{nearest(self.zoo, list(BUILDERS))}; "
                                 f"use one of: {', '.join(BUILDERS)}")
            allowed = options(self.zoo)
            for key in self.options:
                if key not in allowed:
                    raise config_error(f"{self.zoo} has no option '{key}'{nearest(key, allowed)}; "
                                     f"its options are: {', '.join(allowed)}")
            for key, value in self.options.items():
                problem = option_problem(key, [value])
                if problem:
                    raise config_error(f"{key}: {problem}")
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# --- helpers ----------------------------------------------------------------------------------------------


def _classifier(keras, x, num_classes: int, dropout: float):
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    # Glorot for the linear logits layer whatever the hidden layers use
    x = keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform", name="logits")(x)
    return keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)


def _check(ok: bool, problem: str, fix: str) -> None:
    if not ok:
        raise UsageError(problem, fix)


def _check_common(input_shape, num_classes, width, depth, dropout, activation, init, *, image: bool):
    """Convert and check what every builder takes; returns (input shape, num_classes, initializer name)."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise UsageError(f"input_shape={input_shape!r}", "give the per-sample shape, e.g. (32, 32, 3)") from None
    _check(len(shape) >= 1 and min(shape) >= 1, f"input_shape={shape}", "give positive sizes, e.g. (32, 32, 3)")
    if image:
        _check(len(shape) == 3, f"input_shape={shape} for a conv net", "give (height, width, channels), or use mlp")
    _check(isinstance(num_classes, int | np.integer) and num_classes >= 2, f"num_classes={num_classes!r}",
           "use 2 or more classes")  # fmt: skip
    _check(width > 0, f"width multiplier {width}", "use a positive width, e.g. 0.25, 0.5 or 1.0")
    _check(int(depth) >= 1, f"depth={depth}", "use a depth of 1 or more")
    _check(0.0 <= dropout < 1.0, f"dropout={dropout}", "use a dropout rate in [0, 1)")
    check_activation(activation)
    if init is not None:
        init = check_initializer(init)  # also maps aliases: xavier_uniform → glorot_uniform
    return shape, int(num_classes), init or default_initializer(activation)


def _divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value`` (MobileNetV2's rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def _tag(value: float) -> str:
    """A multiplier as a name-safe string: 0.25 → '0p25', 1.0 → '1'."""
    return f"{value:g}".replace(".", "p")
