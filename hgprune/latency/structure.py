"""What a model runs, read off its structure: every operator of one forward pass with its shapes, and the features
the latency model sums over them.

The forward pass runs on the ``meta`` device (shapes only, no arithmetic), so describing a paper-scale hg8 costs
milliseconds and needs no real input; whatever the model's structure (pruned widths, residual blocks replaced by
``nn.Identity``, whole stacks removed) is described as it is, because the description is what ``forward`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

# Operators that touch every element once and do no reduction over channels: their cost is launch + memory traffic.
ELEMENTWISE = ("add", "relu", "batch_norm", "max_pool2d", "interpolate")
# The features of a model the latency model weighs (see :func:`features`); the order is the coefficients' order.
FEATURES = (
    "call",  # 1 per forward pass: the runtime's fixed overhead
    "convs",  # number of convolutions: per-kernel launch and dispatch overhead
    "conv_macs_1x1",  # multiply-adds of 1x1 convolutions
    "conv_macs_kxk",  # … of larger kernels (3x3, the 7x7 stem)
    "conv_macs_misaligned",  # … of convolutions whose input or output channels are not a multiple of ``snap``
    "conv_out_elements",  # elements written by convolutions (memory traffic)
    "elementwise_ops",  # number of element-wise operators (add, ReLU, BatchNorm, pooling, upsampling)
    "elementwise_elements",  # elements they write
)


@dataclass(frozen=True)
class Op:
    """One operator of a forward pass: its kind, and for convolutions its channels, kernel and output size."""

    kind: str  # conv | add | relu | batch_norm | max_pool2d | interpolate
    out_elements: int  # elements of the output, batch included
    in_channels: int = 0
    out_channels: int = 0
    kernel: int = 0  # square kernel side (convolutions)
    groups: int = 1
    macs: int = 0  # multiply-adds (convolutions)


_KINDS = {
    torch.conv2d: "conv",
    torch.nn.functional.conv2d: "conv",
    torch.add: "add",
    torch.Tensor.add: "add",
    torch.Tensor.__add__: "add",
    torch.Tensor.__iadd__: "add",
    torch.Tensor.add_: "add",
    torch.relu: "relu",
    torch.relu_: "relu",
    torch.nn.functional.relu: "relu",
    torch.batch_norm: "batch_norm",
    torch.nn.functional.batch_norm: "batch_norm",
    torch.nn.functional.max_pool2d: "max_pool2d",
    torch.max_pool2d: "max_pool2d",
    torch.nn.functional.interpolate: "interpolate",
}


class _Recorder(TorchFunctionMode):
    """Records the operators of :data:`_KINDS` (the outermost call only: ``F.relu`` calling ``torch.relu`` is one),
    each with the module ``where()`` names (empty without it)."""

    def __init__(self, where: Callable[[], str] | None = None) -> None:
        super().__init__()
        self.ops: list[tuple[str, Op]] = []
        self._depth = 0
        self._where = where

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _KINDS.get(func)
        if kind is None or self._depth:
            return func(*args, **kwargs)
        out = _output(kind, func, args, kwargs)  # shape rules: meta kernels run in Python and cost ~1 ms per op
        if out is None:
            self._depth += 1
            try:
                out = func(*args, **kwargs)
            finally:
                self._depth -= 1
        if isinstance(out, torch.Tensor):
            self.ops.append((self._where() if self._where else "", _op(kind, args, kwargs, out)))
        return out


def _pair(value) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def _arg(args, kwargs, index: int, name: str, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


def _broadcast(a: torch.Size, b: torch.Size) -> tuple[int, ...] | None:
    """Broadcast shape of two shapes (torch.broadcast_shapes is slow and imports sympy); None if they do not."""
    if a == b:
        return tuple(a)
    width = max(len(a), len(b))
    a, b = (1,) * (width - len(a)) + tuple(a), (1,) * (width - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        return None
    return tuple(max(x, y) if 1 in (x, y) else x for x, y in zip(a, b, strict=True))


def _output(kind: str, func, args, kwargs) -> torch.Tensor | None:
    """The output of a recorded operator as an empty meta tensor of the right shape; None where the rule does not
    apply (the operator then runs on the meta device)."""
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    if kind in ("relu", "batch_norm"):
        return x
    if kind == "add":
        other = _arg(args, kwargs, 1, "other")
        shape = _broadcast(x.shape, other.shape) if isinstance(other, torch.Tensor) else x.shape
        if shape is None:
            return None
        inplace = func in (torch.Tensor.__iadd__, torch.Tensor.add_)
        return x if inplace and tuple(shape) == tuple(x.shape) else torch.empty(shape, device="meta")
    if x.dim() != 4:
        return None
    n, c, h, w = x.shape
    if kind == "conv":
        weight = _arg(args, kwargs, 1, "weight")
        kernel = tuple(weight.shape[2:])
        stride, padding = _pair(_arg(args, kwargs, 3, "stride", 1)), _pair(_arg(args, kwargs, 4, "padding", 0))
        dilation = _pair(_arg(args, kwargs, 5, "dilation", 1))
        if stride is None or padding is None or dilation is None:
            return None
        channels = weight.shape[0]
    elif kind == "max_pool2d":
        kernel = _pair(_arg(args, kwargs, 1, "kernel_size"))
        stride = _pair(_arg(args, kwargs, 2, "stride", None) or kernel)
        padding, dilation = _pair(_arg(args, kwargs, 3, "padding", 0)), _pair(_arg(args, kwargs, 4, "dilation", 1))
        if None in (kernel, stride, padding, dilation) or _arg(args, kwargs, 5, "ceil_mode", False):
            return None
        channels = c
    else:  # interpolate
        size, scale = _arg(args, kwargs, 1, "size"), _arg(args, kwargs, 2, "scale_factor")
        if size is not None:
            size = _pair(size)
            return None if size is None else torch.empty(n, c, *size, device="meta")
        if not isinstance(scale, int | float):
            return None
        return torch.empty(n, c, int(h * scale), int(w * scale), device="meta")
    sides = [
        (side + 2 * pad - dil * (k - 1) - 1) // st + 1
        for side, k, st, pad, dil in zip((h, w), kernel, stride, padding, dilation, strict=True)
    ]
    return torch.empty(n, channels, *sides, device="meta")


def _op(kind: str, args, kwargs, out: torch.Tensor) -> Op:
    elements = out.numel()
    if kind != "conv":
        return Op(kind, elements)
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    out_channels, in_per_group, kh, kw = weight.shape
    macs = elements * in_per_group * kh * kw
    return Op("conv", elements, in_per_group * groups, out_channels, max(kh, kw), groups, macs)


def trace_ops(model: nn.Module, input_size: int, batch: int = 1) -> list[Op]:
    """The operators of one forward pass of ``model`` on a ``batch`` of ``input_size`` px images, in order."""
    return [op for _, op in _trace(model, input_size, batch, by_module=False)]


def trace_ops_by_module(model: nn.Module, input_size: int, batch: int = 1) -> list[tuple[str, Op]]:
    """:func:`trace_ops` with the module each operator belongs to: the innermost module running when it is called,
    and for an operator of the top-level ``forward`` itself, the top-level child that returned last (the stream
    merge ``x + fc_[i](y) + score_[i](score)`` belongs to ``fc_.i`` and ``score_.i``, which go with it). Removing a
    unit then removes exactly the operators under its modules."""
    return _trace(model, input_size, batch, by_module=True)


class _Modules:
    """Which module is running, from global forward hooks (installed for one trace only)."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {id(m): name for name, m in model.named_modules()}
        self.stack: list[str] = []
        self.last_top_child = ""

    def enter(self, module: nn.Module, args) -> None:
        self.stack.append(self.names.get(id(module), ""))

    def leave(self, module: nn.Module, args, out) -> None:
        name = self.stack.pop() if self.stack else ""
        if self.stack == [""]:
            self.last_top_child = name

    def current(self) -> str:
        top = self.stack[-1] if self.stack else ""
        return top or self.last_top_child


def _trace(model: nn.Module, input_size: int, batch: int, by_module: bool) -> list[tuple[str, Op]]:
    meta = {name: torch.empty_like(t, device="meta") for name, t in model.state_dict(keep_vars=True).items()}
    image = torch.empty(batch, 3, input_size, input_size, device="meta")
    modules = _Modules(model) if by_module else None
    recorder = _Recorder(modules.current if modules else None)
    hooks = []
    if modules is not None:
        hooks = [register_module_forward_pre_hook(modules.enter), register_module_forward_hook(modules.leave)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), recorder:
            functional_call(model, meta, (image,), strict=False)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return recorder.ops


def op_features(op: Op, snap: int | None) -> dict[str, float]:
    """One operator's share of the :data:`FEATURES` (all but ``call``)."""
    if op.kind != "conv":
        return {"elementwise_ops": 1, "elementwise_elements": op.out_elements / 1e6}
    shares = {"convs": 1, ("conv_macs_1x1" if op.kernel == 1 else "conv_macs_kxk"): op.macs / 1e6}
    if snap and (op.in_channels % snap or op.out_channels % snap):
        shares["conv_macs_misaligned"] = op.macs / 1e6
    shares["conv_out_elements"] = op.out_elements / 1e6
    return shares


def features(ops: list[Op], snap: int | None, call: float = 1.0) -> list[float]:
    """The model's :data:`FEATURES`, summed over its operators (MACs and elements in millions); ``call`` 0 gives a
    part of a model (what its operators add)."""
    values = dict.fromkeys(FEATURES, 0.0)
    values["call"] = call
    for op in ops:
        for name, value in op_features(op, snap).items():
            values[name] += value
    return [values[name] for name in FEATURES]


def signature(model: nn.Module) -> tuple:
    """What determines a model's operators apart from its input: every parameter's and buffer's name and shape (a block
    replaced by ``nn.Identity`` loses its entries, a narrowed layer changes its shapes)."""
    return tuple((name, tuple(t.shape)) for name, t in model.state_dict(keep_vars=True).items())


def total_macs(ops: list[Op]) -> int:
    return sum(op.macs for op in ops)
