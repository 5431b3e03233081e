"""Where and how tensors are computed: the device, and a measured plan (precision, memory format, allocator).

The choices are measured, not assumed: bench/train_speed.py and bench/compute_plan.py print the
numbers behind each default here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from dataclasses import dataclass

import torch

from bincls.errors import BinclsError


def resolve_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple MPS, then the CPU; asking for one that is absent is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise BinclsError(
            "device cuda was asked for, but no CUDA GPU is available here. Use --device auto or cpu."
        )
    if name == "mps" and not mps:
        raise BinclsError(
            "device mps was asked for, but Apple MPS is not available here. Use --device auto or cpu."
        )
    return torch.device(name)


def device_info(device: torch.device) -> dict:
    """Name and memory of the device, for the status and the UI."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "device": "cuda",
            "device_name": props.name,
            "device_memory_gb": round(props.total_memory / 2**30, 1),
        }
    if device.type == "mps":
        return {"device": "mps", "device_name": "Apple GPU (MPS)"}
    return {"device": "cpu", "device_name": f"CPU ({os.cpu_count()} cores)"}



# Models for which bf16 autocast + channels_last made a CPU training step faster on an AVX512-BF16
# machine (bench/compute_plan.py, 2 cores: seed-cnn 2.5x faster than fp32). For small-cnn and
# mobilenet_v2 fp32 was fastest (bf16 0.66x; channels_last 0.75x on mobilenet_v2), so they keep fp32.
CPU_BF16_MODELS: frozenset[str] = frozenset({"seed-cnn"})
CPU_CHANNELS_LAST_MODELS: frozenset[str] = frozenset({"seed-cnn"})
# Inference (cached backbone features, evaluation) measured separately: mobilenet_v2's forward pass on
# 64 images at 224 px took 0.49 s in fp32 and 0.16 s in bf16 + channels_last on the same CPU.
CPU_BF16_INFERENCE_MODELS: frozenset[str] = frozenset({"seed-cnn", "mobilenet_v2"})


def cpu_supports_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls and convolutions run natively (oneDNN)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class ComputePlan:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, None for plain fp32
    channels_last: bool
    note: str

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def grad_scaling(self) -> bool:
        return self.dtype == torch.float16 and self.device.type == "cuda"

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def plan_compute(device: torch.device, model_name: str, precision: str = "auto") -> ComputePlan:
    """Pick autocast dtype and memory format for this device and model."""
    if precision == "fp32":
        return ComputePlan(device, None, False, "fp32 as asked")
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            precision = "fp16"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return ComputePlan(
            device, dtype, True, f"CUDA mixed precision ({'bf16' if dtype == torch.bfloat16 else 'fp16'})"
        )
    if device.type == "mps":
        return ComputePlan(device, None, False, "fp32 on Apple MPS")
    bf16_ok = cpu_supports_bf16()
    if precision == "bf16":
        return ComputePlan(
            device,
            torch.bfloat16 if bf16_ok else None,
            bf16_ok,
            "bf16 on CPU" if bf16_ok else "this CPU has no native bf16: fp32",
        )
    if precision == "fp16":
        return ComputePlan(device, None, False, "fp16 is for GPUs: fp32 on CPU")
    if bf16_ok and model_name in CPU_BF16_MODELS:
        return ComputePlan(
            device,
            torch.bfloat16,
            model_name in CPU_CHANNELS_LAST_MODELS,
            "bf16 autocast (measured faster for this model on this CPU)",
        )
    return ComputePlan(device, None, model_name in CPU_CHANNELS_LAST_MODELS, "fp32 (measured fastest on CPU)")


def plan_inference(device: torch.device, model_name: str) -> ComputePlan:
    """Like `plan_compute` for forward passes only (no gradients), where bf16 pays off for more models."""
    if device.type == "cpu" and cpu_supports_bf16() and model_name in CPU_BF16_INFERENCE_MODELS:
        return ComputePlan(device, torch.bfloat16, True, "bf16 inference (measured faster on this CPU)")
    return plan_compute(device, model_name)


_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Keep glibc from returning large activation buffers to the OS after every step.

    By default glibc serves large allocations with fresh mmaps and frees them at once, so every
    training step page-faults its activations in again. Turning mmap off for large blocks and never
    trimming keeps them. A no-op (False) where the C library is not glibc.
    """
    if os.environ.get("BINCLS_NO_MALLOC_TUNING"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2**30) == 1 and ok
    return ok


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run a block with `n` torch threads (None: leave them as they are).

    Why: a prediction beside a training run on the same CPU is slowed most by both processes' thread
    pools spinning against each other; predicting one image on one thread keeps its p95 near idle
    (bench/predict_under_training.py --threads 1).
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
