"""The ``zoo`` command line (typer + rich).

Each sub-command lives in its own module of this package, registered explicitly below.
Command modules import only typer at the top; their heavy work is imported inside the
command function, so ``zoo --help`` and ``zoo list`` never import a framework.

A :class:`zoo.errors.ZooError` becomes one line on stderr and exit status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from typing import Optional

import typer

from zoo import __version__
from zoo.cli import (
    check_cmd, compare_cmd, convert_cmd, demo_cmd, eval_cmd, export_cmd, install_cmd, list_cmd, predict_cmd,
    run_cmd,
)

app = typer.Typer(
    name="zoo",
    help="Run established vision models on your annotation folder as it is, and score them all with one "
         "shared evaluator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich help panels import markdown-it and cost ~70 ms on every --help.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# short_help: one whole line each in `zoo --help` at 80 columns (click cuts a longer
# docstring with "..."); `zoo COMMAND --help` shows the full docstring.
app.command("run", short_help="Train a backend on your folder and score it")(run_cmd.run)
app.command("compare", short_help="Run several backends on one split and rank them")(compare_cmd.compare)
app.command("predict", short_help="A run's model on new images; --rank: what to label next")(predict_cmd.predict)
app.command("eval", short_help="Score a predictions file with the shared evaluator")(eval_cmd.evaluate)
app.command("export", short_help="A trained run's network as ONNX, parity checked")(export_cmd.export)
app.command("convert", short_help="Write a folder in another format (COCO, YOLO, ...)")(convert_cmd.convert)
app.command("check", short_help="Lint a folder: each mistake with its file and shape")(check_cmd.check)
app.command("list", short_help="Every backend, its tasks, and whether it is installed")(list_cmd.list_backends)
app.command("demo", short_help="Write the built-in demo dataset (labelme)")(demo_cmd.demo)
app.command("install", short_help="Install a framework a pip extra cannot (detectron2)")(install_cmd.install)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    if debug:
        os.environ["ZOO_DEBUG"] = "1"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``zoo`` command; returns normally on success."""
    from zoo.errors import ZooError
    from zoo.lifetime import terminate_as_interrupt

    # PIL warns on images past Image.MAX_IMAGE_PIXELS; zoo opens up to twice that on purpose
    # (a 108 MP photo) and refuses more in one line itself: no raw warning on the screen
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit", category=RuntimeWarning)
    terminate_as_interrupt()
    try:
        # Standalone mode: typer/click report usage errors (unknown option, missing value)
        # themselves, with the usage line, and exit 2.
        app(args=argv, prog_name="zoo")
    except ZooError as e:
        if os.environ.get("ZOO_DEBUG"):
            raise
        _error_line(str(e))
        for line in getattr(e, "details", ()):  # e.g. each reader tried and why it declined
            sys.stderr.write(f"  {line}\n")
        sys.exit(e.exit_code)
    except OSError as e:
        # a full disk under a framework's own writes (zoo's are ZooErrors already): one line too
        if e.errno not in _NO_ROOM or os.environ.get("ZOO_DEBUG"):
            raise
        _error_line(f"{e.filename or 'writing a file'}: {os.strerror(e.errno)}")
        sys.exit(2)
    except SystemExit as e:
        if e.code in (0, None):
            return
        if e.code == 130:  # typer turns Ctrl-C into exit status 130
            _error_line("interrupted")
        raise


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _error_line(message: str) -> None:
    # One line, no traceback: the user fixes their input and runs again.
    first = " ".join(message.split("\n")).strip()
    sys.stderr.write(f"zoo: error: {first}\n")
