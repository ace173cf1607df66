"""Deployment export: BatchNorm folding, TorchScript and ONNX with parity checks and runtime timing.

TorchScript archives and ONNX graphs are programs, not data: load only files you produced yourself.
"""

from hgprune.export.core import FORMATS, SUFFIXES, ExportResult, build_export, export_metadata, export_model
from hgprune.export.fold import fold_batchnorm, fold_conv_bn, foldable_pairs
from hgprune.export.quantize import QuantizeResult, quantize_model
from hgprune.export.runtime import ORT_LEVELS, require_deploy

__all__ = [
    "FORMATS",
    "ORT_LEVELS",
    "SUFFIXES",
    "ExportResult",
    "QuantizeResult",
    "build_export",
    "export_metadata",
    "export_model",
    "fold_batchnorm",
    "fold_conv_bn",
    "foldable_pairs",
    "quantize_model",
    "require_deploy",
]
