"""The toy package's zoo plugin: specs only, nothing heavy imported."""

from zoo import hookimpl
from zoo.specs import BackendSpec, ReaderSpec, WriterSpec


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name="mean-box",
            tasks=("detect",),
            entry="zoo_toy.backend:MeanBox",
            requires=("numpy",),
            description="Predicts each class's mean relative box (a third-party toy)",
            defaults="zoo_toy:configs/mean-box",  # zoo_toy/configs/mean-box/detect.yaml, package data
        )
    ]


@hookimpl
def zoo_readers():
    return [ReaderSpec(name="toy-csv", entry="zoo_toy.reader:read", sniff="zoo_toy.reader:sniff",
                       description="boxes.csv beside the images (a third-party toy)")]


@hookimpl
def zoo_writers():
    return [WriterSpec(name="toy-csv", entry="zoo_toy.writer:write", tasks=("detect",), default_task="detect",
                       options=("copy_images",), round_trip=True,
                       description="boxes.csv beside the images (a third-party toy)")]
