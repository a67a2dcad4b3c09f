"""Every extension point of zoo, in one documented module.

A plugin is any module with functions named like these and decorated with
``zoo.hookimpl``, registered through the ``zoo`` entry-point group of its package::

    # your package's pyproject.toml
    [project.entry-points.zoo]
    my_backend = "my_package.zoo_plugin"

    # my_package/zoo_plugin.py  -- keep it light: no framework imports here
    from zoo import hookimpl
    from zoo.specs import BackendSpec

    @hookimpl
    def zoo_backends():
        return [BackendSpec(name="my-net", tasks=("detect",), entry="my_package.net:MyNet",
                            requires=("torch",), description="My detector",
                            defaults="my_package:configs/my-net")]  # its detect.yaml, package data

zoo's own backends and adapters are registered exactly this way (see its pyproject.toml);
nothing registers itself as a side effect of being imported. Hooks return *specs*, not
classes, so listing plugins never imports a framework.

To prove a backend honours the contract, run :func:`zoo.testing.check_backend` on it.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")


@hookspec
def zoo_backends() -> list:
    """Return the :class:`zoo.specs.BackendSpec` of every backend this plugin provides.

    A backend class (``BackendSpec.entry``) subclasses :class:`zoo.backend.Backend`; its
    ``fit(train, selection)`` follows zoo's model-selection protocol (:mod:`zoo.selection`)
    and never sees the split that is scored.
    Backend names must be unique across all installed plugins; a clash is an error that
    names both plugins, never a silent override.
    """


@hookspec
def zoo_readers() -> list:
    """Return the :class:`zoo.specs.ReaderSpec` of every annotation format this plugin reads.

    A reader turns a folder or file into a :class:`zoo.dataset.Dataset`, never writes into
    its input, and reports each problem either as a :class:`zoo.errors.DataError` (fatal)
    or as a :class:`zoo.dataset.Problem` in ``Dataset.warnings``.
    """


@hookspec
def zoo_writers() -> list:
    """Return the :class:`zoo.specs.WriterSpec` of every format this plugin writes.

    The spec declares what the core asks of a writer (its tasks, default task, the convert
    options it takes, round trip, per-image predictions, streaming); zoo never branches on a
    writer's name, so a third party's writer gets exactly the treatment of zoo's own.
    """


@hookspec
def zoo_installers() -> list:
    """Return the :class:`zoo.specs.InstallerSpec` of every framework this plugin can install.

    For frameworks a pip extra cannot install (not on PyPI under their own name, or only as
    a wheel that needs care): ``zoo install NAME`` runs the installer's function.
    """


@hookspec
def zoo_evaluators() -> list:
    """Return the :class:`zoo.metrics.EvaluatorSpec` of every task this plugin scores.

    Each spec names its task, the evaluator's factory and options, and the
    :class:`zoo.metrics.MetricsSchema` every report, leaderboard and table reads the scores
    by. zoo's own evaluators register this way (:mod:`zoo.evaluation.plugin`); one evaluator
    per task across all plugins, a clash is an error that names both.
    """
