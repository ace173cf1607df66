"""The runtimes a model is deployed on, each as a way to turn a model into a timed call.

A runtime prepares ``model`` once (export, session, graph capture) and returns a zero-argument callable that runs one
batch, so :func:`hgprune.timing.time_interleaved` times every runtime the same way. Registry: :data:`RUNTIMES`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.export import runtime as rt
from hgprune.export.fold import fold_batchnorm

# Passive OpenMP waiting (set before start-up) implies the same for ONNX Runtime's pool: spinning threads on shared
# cores made hg8 5-10x slower at 2 threads while other jobs ran.
SPIN = os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE"


@dataclass(frozen=True)
class Runtime:
    """How one runtime runs a model: ``prepare(model, input_size, batch, threads) -> call``."""

    name: str  # as on the command line and in recipes: torch | ort | cuda-graph
    field: str  # prefix of its fields in RUN/latency.json (hgprune.report.runs.StepLatency): eager | ort | cuda_graph
    title: str  # as figures and tables name it
    describe: Callable[[int], str]  # how it runs, for the record, given the thread count
    version: Callable[[], str]  # the runtime's version, part of a latency table's fingerprint
    prepare: Callable[[nn.Module, int, int, int], Callable[[], object]]
    device: str = "cpu"


def example_input(batch: int, input_size: int, seed: int = 0) -> torch.Tensor:
    """The seeded batch every runtime is fed (random images: latency does not depend on the pixels)."""
    return torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))


def _torch_prepare(model: nn.Module, input_size: int, batch: int, threads: int) -> Callable[[], object]:
    model = model.eval()
    example = example_input(batch, input_size)
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    if device.type == "cuda":
        example = example.to(device)

        def call_cuda() -> object:
            out = model(example)
            torch.cuda.synchronize(device)
            return out

        return call_cuda
    return lambda: model(example)


def _ort_prepare(model: nn.Module, input_size: int, batch: int, threads: int) -> Callable[[], object]:
    deployable, _ = fold_batchnorm(model)
    graph = rt.onnx_bytes(deployable, input_size, dynamic_batch=batch != 1)
    runner = rt.ort_runner(rt.ort_session(graph, threads, "all", SPIN))
    example = example_input(batch, input_size)
    return lambda: runner(example)


def require_cuda() -> torch.device:
    """The GPU the ``cuda-graph`` runtime runs on, or a one-line error where there is none."""
    if not torch.cuda.is_available():
        raise HgpruneError(
            "runtime 'cuda-graph' needs a CUDA GPU and none is available here; use --runtime ort or torch"
        )
    return torch.device("cuda", torch.cuda.current_device())


def _cuda_graph_prepare(model: nn.Module, input_size: int, batch: int, threads: int) -> Callable[[], object]:
    device = require_cuda()
    half = copy.deepcopy(model).eval().to(device).half().to(memory_format=torch.channels_last)
    static_input = example_input(batch, input_size).to(device).half().contiguous(memory_format=torch.channels_last)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode(), torch.cuda.stream(stream):
        for _ in range(3):  # warm up on a side stream before capture, as CUDA graphs require
            half(static_input)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        static_output = half(static_input)

    def replay() -> object:
        graph.replay()
        torch.cuda.synchronize(device)
        return static_output

    replay.keep_alive = (half, static_input, graph)  # the graph reads and writes these buffers
    return replay


def _ort_version() -> str:
    _, ort = rt.require_deploy()
    return f"onnxruntime {ort.__version__}"


def _cuda_version() -> str:
    device = require_cuda()
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(device)}"


RUNTIMES: dict[str, Runtime] = {
    "torch": Runtime(
        "torch",
        "eager",
        "eager PyTorch",
        lambda threads: (
            f"eager PyTorch, model.eval(), torch.inference_mode, {threads} intra-op thread(s), BatchNorm unfolded"
        ),
        lambda: f"torch {torch.__version__}",
        _torch_prepare,
    ),
    "ort": Runtime(
        "ort",
        "ort",
        "ONNX Runtime",
        lambda threads: (
            "hgprune ONNX export (BatchNorm folded, opset 17), CPUExecutionProvider, graph optimisation "
            f"all, intra-op threads {threads}, allow_spinning {SPIN}"
        ),
        _ort_version,
        _ort_prepare,
    ),
    "cuda-graph": Runtime(
        "cuda-graph",
        "cuda_graph",
        "CUDA graph fp16",
        lambda threads: (
            "fp16 weights, channels_last, captured once as a CUDA graph and replayed; synchronised per call"
        ),
        _cuda_version,
        _cuda_graph_prepare,
        device="cuda",
    ),
}


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``, with an error listing the valid ones."""
    if name not in RUNTIMES:
        raise HgpruneError(f"runtime: unknown {name!r}; valid: {', '.join(RUNTIMES)}")
    runtime = RUNTIMES[name]
    if runtime.device == "cuda":
        require_cuda()
    return runtime
