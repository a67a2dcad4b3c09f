"""The toy package's zoo plugin: specs only, nothing heavy imported."""

from zoo import hookimpl
from zoo.specs import BackendSpec


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name="mean-box",
            tasks=("detect",),
            entry="zoo_toy.backend:MeanBox",
            requires=("numpy",),
            description="Predicts each class's mean relative box (a third-party toy)",
        )
    ]
