"""CLI start-up: wall time of `zoo --help`, `zoo list` and a `zoo run` naming an unknown backend
(its one-line error: the pipeline imported and the options checked) against the anchor `yolo help`.

Median of 5 runs each, measured in one run so the ratio holds on any machine.
Target (issue 2): at most 0.25 s each; the anchor took 2.1 s here when the issue was filed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(cmd: list[str], env: dict[str, str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    env = dict(os.environ)
    env["YOLO_OFFLINE"] = "1"
    env["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="yolo-cfg-")  # keep the anchor off the user's config
    zoo = str(BIN / "zoo")
    rows = [
        ("zoo --help", wall([zoo, "--help"], env)),
        ("zoo list", wall([zoo, "list"], env)),
        # the pipeline imported, the options checked: how soon a mistyped backend is one line
        ("zoo run ?", wall([zoo, "run", "--task", "detect", "--backend", "no-such-backend"], env)),
    ]
    yolo = shutil.which("yolo", path=str(BIN))
    anchor = wall([yolo, "help"], env) if yolo else float("nan")
    print(f"{'command':<12} {'median s':>9} {'vs yolo help':>13}")
    for name, t in rows:
        print(f"{name:<12} {t:9.3f} {t / anchor:12.2f}x")
    print(f"{'yolo help':<12} {anchor:9.3f} {'(anchor)':>13}")


if __name__ == "__main__":
    main()
