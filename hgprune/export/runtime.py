"""Building blocks shared by ``export_model`` and ``benchmarks/latency.py``: TorchScript / ONNX conversion, ONNX
Runtime sessions, parity checks and latency.

Kept free of file I/O so the benchmark can time many variants of one model without touching disk.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.profile import measure_latency
from hgprune.settings import Threads, check

INPUT_NAME = "image"
# keys of what an export carries besides the graph (hgprune.export.core.export_metadata, INT8 adds "quantization"):
# ONNX metadata_props, TorchScript extra files
METADATA_KEYS = ("hgprune_version", "folded_batchnorms", "hgprune_config", "input_normalization", "quantization")
ORT_LEVELS = ("disable", "basic", "extended", "all")
DEPLOY_HINT = "pip install 'hgprune[deploy]'"


def require_deploy():
    """``(onnx, onnxruntime)``, or a one-line error saying how to install the optional ``deploy`` extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        missing = exc.name or "onnx/onnxruntime"
        raise HgpruneError(f"ONNX export needs onnx and onnxruntime ({missing} is missing): {DEPLOY_HINT}") from None
    return onnx, onnxruntime


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Temporarily set torch's intra-op thread count (restored afterwards, so callers' settings survive)."""
    before = torch.get_num_threads()
    if check("threads", threads, Threads | None):
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation and tracer warnings of torch.jit and the legacy ONNX exporter (they are expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def output_names(num_outputs: int) -> list[str]:
    return [f"heatmaps_{i}" for i in range(num_outputs)]


def as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, list | tuple) else [out]


def check_inputs(input_size: int, count: int = 2, seed: int = 0, batch_sizes: Sequence[int] = (1, 2)) -> list:
    """Reproducible random images; batch sizes alternate so a dynamic batch axis is exercised too."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch_sizes[i % len(batch_sizes)], 3, input_size, input_size, generator=gen) for i in range(count)
    ]


def max_abs_diff(reference: nn.Module, candidate: Callable, inputs: Sequence[torch.Tensor]) -> float:
    """Largest absolute difference over all outputs and inputs between ``reference`` and ``candidate``."""
    worst = 0.0
    with torch.inference_mode():
        for x in inputs:
            ref = as_list(reference(x))
            got = as_list(candidate(x))
            if len(ref) != len(got):
                raise HgpruneError(f"export produced {len(got)} outputs, the PyTorch model {len(ref)}")
            for a, b in zip(ref, got, strict=True):
                b = torch.as_tensor(b)
                if a.shape != b.shape:
                    raise HgpruneError(f"export output shape {tuple(b.shape)} differs from PyTorch's {tuple(a.shape)}")
                diff = float((a.float() - b.float()).abs().max())
                if not math.isfinite(diff):  # max(worst, nan) would silently drop it
                    bad = "the PyTorch model" if not torch.isfinite(a).all() else "the exported graph"
                    raise HgpruneError(f"export parity check: {bad} produced NaN or infinite outputs")
                worst = max(worst, diff)
    return worst


def torchscript_module(model: nn.Module, input_size: int, freeze: bool = True) -> torch.jit.ScriptModule:
    """Trace (the hourglass's recursion over ModuleLists does not script) and optionally freeze for inference."""
    model = model.eval()
    example = torch.zeros(1, 3, input_size, input_size)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, example, strict=False, check_trace=False)
        return torch.jit.freeze(traced) if freeze else traced


def torchscript_bytes(module: torch.jit.ScriptModule, metadata: dict[str, str] | None = None) -> bytes:
    """The archive's bytes; ``metadata`` is stored as extra files (read back by :func:`torchscript_load`)."""
    buf = io.BytesIO()
    with _quiet():
        torch.jit.save(module, buf, _extra_files={k: str(v) for k, v in (metadata or {}).items()})
    return buf.getvalue()


def torchscript_load(data: bytes, metadata: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    """Load an archive *we just wrote*: TorchScript archives hold code, so never load untrusted ones.

    ``metadata``, when given, is filled in place with the extra files of :data:`METADATA_KEYS` that the archive has.
    """
    extra = dict.fromkeys(METADATA_KEYS, "")
    with _quiet():
        module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    if metadata is not None:
        metadata.update({k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items() if v})
    return module


def onnx_metadata(session) -> dict[str, str]:
    """The ``metadata_props`` of the graph an ONNX Runtime session was built from."""
    return dict(session.get_modelmeta().custom_metadata_map)


def onnx_bytes(
    model: nn.Module,
    input_size: int,
    opset: int = 17,
    dynamic_batch: bool = True,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """ONNX via the TorchScript-based exporter (``dynamo=False``: needs no onnxscript, exports the hourglass as is);
    outputs are named ``heatmaps_0..S-1``, the input ``image``; the graph is validated with ``onnx.checker``."""
    onnx, _ = require_deploy()
    model = model.eval()
    example = torch.zeros(1, 3, input_size, input_size)
    with torch.no_grad():
        names = output_names(len(as_list(model(example))))
    axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]} if dynamic_batch else None
    buf = io.BytesIO()
    try:
        with _quiet():
            torch.onnx.export(
                model,
                (example,),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=names,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; keep the user's message short
        raise HgpruneError(f"ONNX export failed at opset {opset}: {str(exc).splitlines()[0][:200]}") from None
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise HgpruneError(f"exported ONNX graph is invalid: {str(exc).splitlines()[0][:200]}") from None
    return proto.SerializeToString()


def ort_session(data: bytes, threads: int | None = None, optimization: str = "all", spinning: bool = True):
    """An ONNX Runtime CPU session with a fixed thread count and graph-optimisation level.

    ``spinning=False`` stops idle worker threads from busy-waiting: slower on an idle machine, but on cores shared
    with other jobs spinning threads can slow everything down many times over.
    """
    _, ort = require_deploy()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise HgpruneError(f"ORT optimisation level {optimization!r} unknown; valid: {', '.join(ORT_LEVELS)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.intra_op_num_threads = check("threads", threads, Threads | None) or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def ort_runner(session) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """Wrap a session as ``fn(tensor) -> list[tensor]`` so it is checked and timed like a PyTorch model."""
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(o) for o in session.run(None, {name: x.detach().cpu().numpy()})]

    return run


def median_ms(fn: Callable, input_size: int, warmup: int = 2, repeats: int = 10, max_seconds: float | None = None):
    """Median wall time (ms) of ``fn`` on one batch-1 image, and the number of timed repeats."""
    example = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(1))
    times = measure_latency(fn, example, warmup=warmup, repeats=repeats, max_seconds=max_seconds)
    return statistics.median(times), len(times)
