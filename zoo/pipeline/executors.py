"""Where ``zoo compare`` runs its (backend, fold, seed) runs.

* ``local`` with ``--jobs 1`` (the default): one after another, in this process.
* ``local`` with ``--jobs N``: N processes at once (spawned, so no framework state is
  shared). Each worker process takes one slot: with GPUs, slot ``k`` sees only GPU
  ``k mod #GPUs`` (``CUDA_VISIBLE_DEVICES``); the CPU threads are divided
  (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / torch's threads = cores // N). A run's own output
  goes to its ``log.txt`` and the worker's stdout/stderr to ``<compare>/logs/<cell>.txt``, so
  nothing interleaves; the parent prints one line per finished run.
* ``ray`` (:mod:`zoo.pipeline.executors_ray`): each run a task on an existing Ray cluster.

A job is a :class:`zoo.pipeline.run.RunOptions`; its outcome a :class:`Outcome` (the run's folder and
metrics, or its error and traceback).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.lifetime import die_with_parent
from zoo.pipeline.run import execute


@dataclass
class Job:
    #: the cell's place in the compare's order
    index: int
    backend: str
    fold: int | None
    seed: int
    opts: Any  # zoo.pipeline.run.RunOptions
    #: where the worker's stdout / stderr go (processes only)
    log: Path | None = None


@dataclass
class Outcome:
    run_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def execute_job(opts) -> Outcome:
    """Run one job (``zoo run``), turning its failure into an :class:`Outcome`."""
    try:
        result = execute(opts)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - one run's failure is its row, not the compare's end
        err = f"{type(e).__name__}: {e}" if not isinstance(e, ZooError) else str(e)
        return Outcome(error=err or type(e).__name__, traceback=traceback.format_exc())
    return Outcome(result.run_dir, result.metrics, result.manifest.to_dict())


def local_gpus() -> list[str]:
    """The GPUs a job may be given: ``CUDA_VISIBLE_DEVICES`` when set, else what
    ``nvidia-smi -L`` lists (no framework is imported to ask)."""
    import shutil
    import subprocess

    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(k) for k, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def slot_environment(slot: int, jobs: int, gpus: list[str], cores: int) -> dict[str, str]:
    """The environment of worker ``slot`` of ``jobs``: its GPU and its share of the cores."""
    threads = str(max(1, cores // jobs))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "ZOO_THREADS": threads}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def _init_worker(slots, jobs: int, gpus: list[str], cores: int, parent: int) -> None:
    die_with_parent(parent=parent)  # zoo killed (even kill -9): this worker and, by their own death signal, its children end
    # before any framework is imported in this fresh (spawned) process
    os.environ.update(slot_environment(slots.get(), jobs, gpus, cores))


def _run_in_worker(opts, log: Path | None) -> Outcome:
    """:func:`execute_job` with this process's stdout / stderr sent to ``log``."""
    import sys

    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "1")))
    if log is None:
        return execute_job(opts)
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            return execute_job(opts)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_local(jobs: list[Job], n: int) -> Iterator[tuple[Job, Outcome]]:
    """Each job's outcome as it finishes: in this process (``n`` 1) or ``n`` processes."""
    if n <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, execute_job(job.opts)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    n = min(n, len(jobs))
    slots = ctx.Queue()
    for k in range(n):
        slots.put(k)
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                             initargs=(slots, n, local_gpus(), os.cpu_count() or 1, os.getpid())) as pool:
        futures = {pool.submit(_run_in_worker, job.opts, job.log): job for job in jobs}
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    yield job, fut.result()
                except Exception as e:  # noqa: BLE001 - a worker that died (killed, out of memory)
                    yield job, Outcome(error=f"worker process failed: {type(e).__name__}: {e}",
                                       traceback=traceback.format_exc())
        except BaseException:  # Ctrl-C, SIGTERM: the pool would wait for every running job to finish
            _kill_workers(pool)
            raise


def _kill_workers(pool) -> None:
    """End a process pool's workers now (their own children follow by their death signal)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):  # the pool has no public handle
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
