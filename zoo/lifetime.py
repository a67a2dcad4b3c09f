"""Every process zoo starts ends when zoo ends: Ctrl-C, ``kill``, ``kill -9`` or a crash.

A training child left behind keeps a laptop's cores busy for minutes after the user thought
zoo stopped (an nnU-Net worker re-parented to init ran on for 10 minutes). Two mechanisms:

* :func:`die_with_parent`, called first thing in a child (a ``preexec_fn``, a pool
  initialiser): on Linux the kernel sends the child SIGTERM when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``), which even ``kill -9`` of zoo
  triggers; elsewhere a daemon thread polls the parent and exits the child when it is gone
  (in a Python child only: a thread does not survive ``exec``);
* :func:`run_group`: a child run in its own process group, so that when zoo stops it (an
  exception, Ctrl-C) the child and everything the child started are killed together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Make this process receive ``sig`` when its parent ends, or exit now if it already has.
    ``parent``: the pid the parent had (a spawned process that runs this only after its
    start-up may have been re-parented already; a forked child's current parent is right)."""
    parent = os.getppid() if parent is None else parent
    if not _kernel_death_signal(sig):
        _watch_parent(parent)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _kernel_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, every: float = 1.0) -> None:
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="zoo-parent-watch", daemon=True).start()


def kill_group_on_term() -> None:
    """In a child that leads its own process group (:func:`run_group`): SIGTERM, from zoo or
    from the kernel when zoo died, kills the whole group, the child's own workers included
    (they never see zoo, so they cannot watch it)."""

    leader = os.getpid()

    def kill_all(signum, frame) -> None:
        if os.getpid() != leader:  # a forked worker inherits the handler: it just dies, as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        os.killpg(os.getpgrp(), signal.SIGKILL)

    signal.signal(signal.SIGTERM, kill_all)


def run_group(cmd: Sequence[str], **popen) -> int:
    """``subprocess.run(cmd).returncode``, the child in a new process group that dies with
    zoo: when this call is interrupted (Ctrl-C, SIGTERM turned into KeyboardInterrupt, any
    exception) the whole group is killed before the exception goes on."""
    proc = subprocess.Popen(list(cmd), start_new_session=True, preexec_fn=die_with_parent, **popen)
    try:
        return proc.wait()
    except BaseException:
        kill_group(proc.pid)
        proc.wait()
        raise


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_as_interrupt() -> None:
    """SIGTERM (``kill``, a scheduler's timeout) unwinds zoo as Ctrl-C does: children
    killed, the run folder's manifest marked interrupted, the resume command printed."""

    import threading

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is threading.main_thread():  # only there may Python set a handler
        signal.signal(signal.SIGTERM, interrupt)
