"""``zoo compare --executor ray [--address ADDR]``: each (backend, fold, seed) run is a task on
an existing Ray cluster (``pip install 'zoo[ray]'``).

* Connects to the cluster at ``--address`` (else ``RAY_ADDRESS``, else the local one Ray
  finds); it never starts one.
* A task asks for one GPU where the cluster has GPUs, else one CPU.
* The data and the run folders must lie on a path every node sees (a shared file system):
  before anything trains, one probe task per node reads a file the driver wrote under
  ``--out`` and checks the data folder; a node that cannot is a one-line error.
* Each run gets its folder name up front; a task whose worker dies is retried by Ray
  (``max_retries``), and the retry continues that run folder with ``--resume``.
* The tasks return each run's metrics and manifest; the leaderboard is written as for local runs.
* The plugins (backends) must be importable on every node: Ray rebuilds the registry there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from zoo.errors import ZooError
from zoo.pipeline.executors import Job, Outcome, execute_job
from zoo.pipeline.runfolder import RunFolder, default_name

#: a task whose worker dies is tried this many more times, resuming its run folder
RETRIES = 2


def _ray():
    try:
        import ray
    except ImportError:
        raise ZooError("--executor ray needs Ray on this machine and every node: pip install 'zoo[ray]'") from None
    return ray


def connect(address: str | None):
    """Join the existing cluster (never start one); True when this call connected."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ZooError(f"--executor ray: no Ray cluster at {address} ({first}); start one with `ray start --head` "
                       "or give --address") from None
    return True


def check_shared_paths(out: Path, data: Path | None) -> None:
    """Every alive node must see ``out`` (a probe file written here) and ``data``."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out.mkdir(parents=True, exist_ok=True)
    probe = out / f".zoo-ray-probe-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    probe.write_text(token, encoding="utf-8")

    @ray.remote(num_cpus=0)
    def sees(probe_path: str, data_path: str | None) -> tuple[bool, bool]:
        try:
            ok = Path(probe_path).read_text(encoding="utf-8") == token
        except OSError:
            ok = False
        return ok, data_path is None or Path(data_path).exists()

    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {n.get("NodeManagerAddress", n["NodeID"]): sees.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            str(probe), None if data is None else str(data)) for n in nodes}
        for node, ref in refs.items():
            sees_out, sees_data = ray.get(ref, timeout=300)
            if not sees_out:
                raise ZooError(f"--executor ray: node {node} cannot see {out}: the run folders must be on a path "
                               "every node sees (a shared file system); give such a path as --out")
            if not sees_data:
                raise ZooError(f"--executor ray: node {node} cannot see {data}: the data must be on a path every "
                               "node sees (a shared file system)")
    finally:
        probe.unlink(missing_ok=True)


def cell_names(out: Path, jobs: list[Job], task: str) -> list[str]:
    """A free run-folder name for each job, chosen up front so that a retry can resume it."""
    taken: set[str] = set()
    names = []
    for job in jobs:
        base = job.opts.output.name or default_name(job.backend, task)
        k, name = 1, base
        while name in taken or (out / name).exists():
            k += 1
            name = f"{base}-{k}"
        taken.add(name)
        names.append(name)
    return names


def run_cell_task(opts) -> Outcome:
    """The task body: a new run under its name, or, when an earlier attempt of this task left
    that folder with a manifest (its worker died), the same run resumed."""
    folder = RunFolder(Path(opts.output.out) / opts.output.name)
    m = folder.manifest_or_none()
    if m is not None and m.is_finished and folder.metrics_file.is_file():
        return Outcome(folder.path, folder.read_metrics(), m.to_dict())
    if m is not None:
        opts = replace(opts, output=replace(opts.output, resume=True))
    return execute_job(opts)


def absolute(opts, name: str):
    """The run, named ``name``, its paths made absolute: a worker does not run in this directory."""
    source, split, training = opts.source, opts.split, opts.training
    return replace(opts, output=replace(opts.output, out=Path(opts.output.out).resolve(), name=name),
                   source=replace(source, path=None if source.path is None else Path(source.path).resolve()),
                   split=replace(split, rule=Path(split.rule).resolve() if split.rule else None),
                   training=replace(training, config_files=[Path(p).resolve() for p in training.config_files]))


def run_ray(jobs: list[Job], address: str | None, out: Path) -> Iterator[tuple[Job, Outcome]]:
    """Each job as a Ray task; outcomes as they finish."""
    if not jobs:
        return
    ray = _ray()
    connected = connect(address)
    try:
        out = Path(out).resolve()
        data = jobs[0].opts.source.path
        check_shared_paths(out, None if data is None else Path(data).resolve())
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=RETRIES,
                          retry_exceptions=False)(run_cell_task)
        names = cell_names(out, jobs, jobs[0].opts.task)
        pending = {task.remote(absolute(job.opts, name)): job for job, name in zip(jobs, names)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                try:
                    yield job, ray.get(done[0])
                except Exception as e:  # noqa: BLE001 - out of retries (the worker kept dying) or lost
                    import traceback

                    yield job, Outcome(error=f"Ray task failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}",
                                       traceback=traceback.format_exc())
        except BaseException:  # Ctrl-C, SIGTERM, the caller gone: the runs end with zoo
            cancel(pending)
            raise
    finally:
        if connected:
            ray.shutdown()


def cancel(refs) -> None:
    """Kill the workers running these tasks now (their children follow by their death signal,
    :func:`zoo.lifetime.die_with_parent`); Ray would end them only once it noticed the driver
    gone. When zoo itself is killed (SIGKILL), that notice is all there is: Ray ends a dead
    driver's workers."""
    ray = _ray()
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - already finished, or the cluster gone: nothing left to end
            pass
