"""What the CPU can do for training, found out rather than assumed: its bf16 support (the
instruction flags the kernel reports, else torch's oneDNN check), its physical cores, and
the share of them this process may use (``--jobs`` workers get ``ZOO_THREADS`` each).

:func:`compute_plan` turns that and the backend's wishes into one :class:`Compute` (the
precision, the memory format, the threads), which :func:`zoo.training.fit` applies and
records; the run's manifest states it (``compute``)."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The instruction-set flags (as /proc/cpuinfo names them) whose presence makes bf16 matrix
#: products native: AVX512-BF16 (Cooper Lake, Zen 4 and later) and AMX (Sapphire Rapids and
#: later). Without them oneDNN emulates bf16, slower than fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Compute:
    """How one training runs its arithmetic: ``precision`` (``fp32``; ``bf16``: CPU autocast;
    ``fp16``: CUDA autocast with a gradient scaler), ``channels_last`` (the model's and the
    batches' memory format), ``threads`` (torch's intra-op threads; None: left as torch set
    them, on a GPU) and ``reason``, a sentence saying why."""

    precision: str
    channels_last: bool
    threads: int | None
    reason: str

    @property
    def autocast_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str] | None:
    """The first processor's flags in ``cpuinfo``; None where there is no such file (macOS,
    Windows) or it names no flags."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


@functools.lru_cache(maxsize=1)
def bf16_native() -> tuple[bool, str]:
    """Whether this CPU multiplies bf16 natively, and what said so."""
    flags = cpu_flags()
    if flags is not None:
        found = [f for f in BF16_FLAGS if f in flags]
        if found:
            return True, f"the CPU reports {' and '.join(found)}"
        return False, "the CPU reports neither avx512_bf16 nor amx_bf16"
    import torch

    # no /proc/cpuinfo: oneDNN's own check (it asks the CPU the same question through cpuid)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.backends.cpu.get_cpu_capability() != "DEFAULT"
    return native, f"torch's oneDNN says bf16 is {'native' if native else 'not native'} here"


def physical_cores(cpuinfo: Path = CPUINFO) -> int:
    """Physical cores this process may run on: distinct (package, core) pairs among the
    processors in its affinity mask; the logical count where cpuinfo does not say."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return max(1, len(allowed))
    cores, processor, package = set(), None, "0"
    for line in text.splitlines() + [""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            processor = int(value)
        elif key == "physical id":
            package = value
        elif key == "core id" and processor in allowed:
            cores.add((package, value))
        elif not line.strip():
            processor, package = None, "0"
    return max(1, len(cores) or len(allowed))


def training_threads() -> int:
    """torch's threads for training: this process's share of the cores when ``--jobs``
    split them (``ZOO_THREADS``, zoo.pipeline.executors), else the count the user set in
    ``OMP_NUM_THREADS`` (the standard way to keep a process off cores other work needs),
    else every physical core (a hyper-thread's twin shares the core's arithmetic units and
    only adds contention). The user's count wins over zoo's guess: they know what else
    runs on the machine."""
    # the user's OMP_NUM_THREADS as zoo found it (zoo/__init__.py), not as a framework reset it
    for name in ("ZOO_THREADS", "ZOO_USER_OMP_NUM_THREADS"):
        share = os.environ.get(name, "").strip()
        if share.isdigit() and int(share) > 0:
            return int(share)
    return physical_cores()


def compute_plan(device_type: str, *, amp: bool, bf16: bool = False, channels_last: bool = False) -> Compute:
    """The :class:`Compute` for training on ``device_type``.

    amp:           the config's ``amp`` (``--set amp=false`` keeps fp32 everywhere)
    bf16:          whether the backend was measured to keep its quality in bf16 (else it
                   stays fp32 on every CPU)
    channels_last: whether the backend's network is a conv net fed ``(N, C, H, W)`` batches
    """
    if device_type == "cuda":
        return Compute("fp16" if amp else "fp32", channels_last, None,
                       "CUDA autocast" if amp else "amp=false")
    threads = training_threads() if device_type == "cpu" else None
    if device_type != "cpu":
        return Compute("fp32", channels_last, threads, f"{device_type}: fp32")
    if not amp:
        return Compute("fp32", channels_last, threads, "amp=false")
    if not bf16:
        return Compute("fp32", channels_last, threads, "this backend trains in fp32 on a CPU (bf16 not shown to keep its quality)")
    native, why = bf16_native()
    return Compute("bf16" if native else "fp32", channels_last, threads, why)


# What training ran with, for the run's manifest (zoo.pipeline.run reads it as fetch's records).
_RECORDS: list[dict[str, Any]] = []


def record(compute: Compute) -> None:
    _RECORDS.append(compute.to_dict())


def mark() -> int:
    """A position in the records: :func:`records_since` returns what came after it."""
    return len(_RECORDS)


def records_since(position: int) -> list[dict[str, Any]]:
    return [dict(r) for r in _RECORDS[position:]]
