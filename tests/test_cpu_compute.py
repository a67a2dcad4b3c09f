"""How the shared loop uses the CPU (zoo.training.cpu): bf16 found from the CPU's own flags,
physical cores counted from cpuinfo, and fit training in the precision, memory format and
threads it records (the run's manifest states them)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zoo.training import MappedDataset, TrainConfig, criterion_loss, fit  # noqa: E402
from zoo.training import cpu  # noqa: E402

def _cpuinfo(core_of_processor: list[int], flags: str) -> str:
    """/proc/cpuinfo as Linux writes it: one block per logical processor, one package."""
    return "\n".join(f"processor\t: {p}\nphysical id\t: 0\ncore id\t\t: {core}\nflags\t\t: {flags}\n"
                     for p, core in enumerate(core_of_processor))


# Two hyper-threaded cores (4 logical processors: 0 and 2 share core 0, 1 and 3 core 1).
HYPERTHREADED = _cpuinfo([0, 1, 0, 1], "fpu sse2 avx2 avx512f avx512_bf16")


def test_flags_and_physical_cores_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(HYPERTHREADED)
    assert "avx512_bf16" in cpu.cpu_flags(info) and "amx_bf16" not in cpu.cpu_flags(info)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cpu.physical_cores(info) == 2  # the twins share a core's arithmetic
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 2})
    assert cpu.physical_cores(info) == 1  # the two processors we may use are one core
    assert cpu.cpu_flags(tmp_path / "missing") is None


def _threads_in_a_fresh_process(env: dict, code: str) -> int:
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ZOO_THREADS", "ZOO_USER_OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code + "\nfrom zoo.training.cpu import training_threads\n"
                           "print(training_threads())"], env={**clean, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_jobs_share_of_the_cores_wins_then_the_users_omp_count():
    """ZOO_THREADS (--jobs' share) first, then the user's OMP_NUM_THREADS as zoo found it,
    else every physical core; ultralytics setting OMP_NUM_THREADS=1 at its import (when
    unset) is not the user's choice, in zoo's process nor in those it starts after."""
    pytest.importorskip("ultralytics")  # it sets OMP_NUM_THREADS=1 in the environment at import when unset
    assert _threads_in_a_fresh_process({"OMP_NUM_THREADS": "5", "ZOO_THREADS": "3"}, "import zoo") == 3
    assert _threads_in_a_fresh_process({"OMP_NUM_THREADS": "5"}, "import zoo") == 5
    cores = cpu.physical_cores()
    for unset in ({}, {"OMP_NUM_THREADS": ""}, {"OMP_NUM_THREADS": "auto"}):
        assert _threads_in_a_fresh_process(unset, "import zoo") == cores
    framework_first = "import zoo, os, subprocess, sys, ultralytics\nassert os.environ['OMP_NUM_THREADS'] == '1'"
    assert _threads_in_a_fresh_process({}, framework_first) == cores
    child = (framework_first + "\nout = subprocess.run([sys.executable, '-c', 'from zoo.training.cpu import "
             "training_threads; print(training_threads())'], capture_output=True, text=True).stdout\n"
             "print(out.split()[-1]); raise SystemExit")
    assert _threads_in_a_fresh_process({}, child) == cores  # a process zoo starts after the import


def test_plan_follows_amp_the_backend_and_the_cpu(monkeypatch):
    monkeypatch.setattr(cpu, "bf16_native", lambda: (True, "the CPU reports amx_bf16"))
    assert cpu.compute_plan("cpu", amp=True, bf16=True).precision == "bf16"
    assert cpu.compute_plan("cpu", amp=False, bf16=True).precision == "fp32"  # --set amp=false
    assert cpu.compute_plan("cpu", amp=True, bf16=False).precision == "fp32"  # backend not shown to keep quality
    monkeypatch.setattr(cpu, "bf16_native", lambda: (False, "the CPU reports neither"))
    plan = cpu.compute_plan("cpu", amp=True, bf16=True, channels_last=True)
    assert (plan.precision, plan.channels_last, plan.reason) == ("fp32", True, "the CPU reports neither")
    assert cpu.compute_plan("cuda", amp=True).precision == "fp16"


class _Probe(torch.nn.Module):
    """A tiny conv net that notes the dtype of its conv output and its input's memory format."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)
        self.seen: set = set()

    def forward(self, x):
        y = self.conv(x)
        self.seen.add((y.dtype, x.is_contiguous(memory_format=torch.channels_last)))
        return self.head(y.float().mean((2, 3)))


def _images(n=8):
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(3, 8, 8, generator=g) + (i % 2), i % 2) for i in range(n)]


@pytest.mark.parametrize("amp", [True, False])
def test_fit_trains_as_planned_and_records_it(monkeypatch, amp):
    native = cpu.bf16_native()[0]
    model = _Probe()
    mark = cpu.mark()
    fit(model, MappedDataset(_images(), lambda s: s), config=TrainConfig(epochs=1, batch=4, amp=amp),
        loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()), bf16=True, channels_last=True)
    (record,) = cpu.records_since(mark)
    bf16 = amp and native
    assert record["precision"] == ("bf16" if bf16 else "fp32") and record["channels_last"] is True
    assert record["threads"] == cpu.training_threads() == torch.get_num_threads()
    assert model.seen == {(torch.bfloat16 if bf16 else torch.float32, True)}
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_fit_keeps_fp32_and_the_layout_unless_the_backend_opts_in():
    model = _Probe()
    fit(model, MappedDataset(_images(), lambda s: s), config=TrainConfig(epochs=1, batch=4),
        loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()))
    assert model.seen == {(torch.float32, False)}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimiser_is_fused_on_a_cpu_and_steps_as_the_per_tensor_loop(optimizer, monkeypatch):
    """The fused kernel (one pass over all parameters) replaces torch's per-tensor loop, the
    CPU default; the weights after a few steps are the loop's, to float rounding."""
    from zoo.training import make_optimizer, optim

    s = TrainConfig(optimizer=optimizer, lr=0.05, weight_decay=0.01)
    fused_model, loop_model = _Probe(), _Probe()  # the same weights: _Probe seeds itself
    fused = make_optimizer(fused_model, s)
    monkeypatch.setattr(optim, "_fused", lambda params: {})  # torch's default: the per-tensor loop
    loop = make_optimizer(loop_model, s)
    assert fused.defaults["fused"] is True and not loop.defaults.get("fused")
    x = torch.rand(4, 3, 8, 8)
    for _ in range(3):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.equal(fused_model.head.weight, _Probe().head.weight)  # the steps moved it
