"""torchvision classifiers: conformance on the demo's image labels, every architecture builds
with the dataset's class count, ImageNet weights only from the local cache, best epoch by
validation accuracy."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from zoo.backend import RunContext  # noqa: E402
from zoo.config import resolve_config  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.selection import Selection  # noqa: E402
from zoo.plugins.tv_models import CLASSIFIERS  # noqa: E402
from zoo.plugins.tv_models.classifiers import ClassifierConfig, build_classifier, transforms  # noqa: E402
from zoo.registry import get_registry  # noqa: E402
from zoo.tasks import get_task  # noqa: E402
from zoo.testing import Conformance, parametrize_with_checks  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    out = tmp_path_factory.mktemp("tvcls")
    write_demo(out, images=8, size=64, seed=0)
    return read_dataset(out)


CONFORMANCE = [Conformance(backend, "classify") for backend in ("mobilenet_v3_small", "resnet18")]  # 8 demo images


@parametrize_with_checks(CONFORMANCE)
def test_conformance_on_demo(conformance, check):
    check(conformance)


@pytest.mark.parametrize("case", CONFORMANCE, ids=repr)
def test_conformance_predictions_carry_class_scores(case):
    report = case.report()  # the training the checks above ran
    p = report.predictions[0]
    assert len(p.scores) == 3 and sum(p.scores) == pytest.approx(1.0, abs=1e-5)
    assert p.label == max(range(3), key=p.scores.__getitem__)
    assert report.metrics["main"] == "accuracy"


@pytest.mark.parametrize("arch", sorted(CLASSIFIERS))
def test_every_architecture_takes_the_class_count(arch):
    model = build_classifier(arch, 3, pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))  # the smallest imgsz the tests use
    assert tuple(out.shape) == (1, 3)


def test_transforms_size_and_normalisation(demo):
    cfg = ClassifierConfig(imgsz=48)
    img = demo.images[0].open()
    x = transforms(cfg, train=False)(img)
    assert tuple(x.shape) == (3, 48, 48) and x.dtype == torch.float32
    assert -3 < float(x.mean()) < 3  # ImageNet-normalised, not 0..255
    assert tuple(transforms(cfg, train=True)(img).shape) == (3, 48, 48)


def test_pretrained_only_from_local_cache(tmp_path, monkeypatch):
    from torchvision.models import get_model, get_model_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ZooError, match=r"mobilenet_v3_small-\w+\.pth is not cached.*put it at .*checkpoints"):
        build_classifier("mobilenet_v3_small", 3, pretrained=True)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    imagenet = get_model("mobilenet_v3_small", weights=None).state_dict()
    torch.save(imagenet, cache / get_model_weights("mobilenet_v3_small").DEFAULT.url.rsplit("/", 1)[1])
    model = build_classifier("mobilenet_v3_small", 3, pretrained=True)
    assert torch.equal(model.features[0][0].weight, imagenet["features.0.0.weight"])
    assert model.classifier[-1].out_features == 3  # the ImageNet head was replaced

    # a cache file swapped for a pickle that runs a command: refused before torchvision opens it
    from test_checkpoints import hostile_pickle

    hostile_pickle(cache / get_model_weights("mobilenet_v3_small").DEFAULT.url.rsplit("/", 1)[1], tmp_path / "marker")
    with pytest.raises(ZooError, match=r"pickled object \(posix.system\)"):
        build_classifier("mobilenet_v3_small", 3, pretrained=True)
    assert not (tmp_path / "marker").exists()


def test_best_epoch_on_the_selection_split_and_load(demo, tmp_path):
    task = get_task("classify")
    Resnet18 = get_registry().backend("resnet18").load()
    cfg = resolve_config(
        Resnet18.Config, backend="resnet18", task="classify",
        flags={"epochs": 2, "imgsz": 32, "batch": 4, "device": "cpu"},
    )
    ctx = RunContext(run_dir=tmp_path)
    b = Resnet18(task, demo.meta(), cfg, ctx)
    selection = Selection.of(task, demo.subset([r.id for r in demo.images[6:]]))
    b.fit(demo.subset([r.id for r in demo.images[:6]]), selection)
    best = torch.load(ctx.checkpoint_dir / "best.pt", weights_only=True)
    assert best["extra"]["classes"] == demo.classes
    # the kept epoch scored best on the selection split (zoo's accuracy); ties to the later one
    scores = [s["score"] for s in selection.scored]
    assert len(scores) == 2 and all(0.0 <= v <= 1.0 for v in scores)
    assert selection.chosen_epoch == best["epoch"] == max(range(2), key=lambda e: (scores[e], e))
    restored = Resnet18.load(task, demo.meta(), cfg, ctx)
    a = [s for p in b.predict(demo.images) for s in p.scores]
    c = [s for p in restored.predict(demo.images) for s in p.scores]
    assert a == pytest.approx(c, abs=1e-5)
    wrong = demo.meta()
    wrong.classes = ["x", "y", "z"]
    with pytest.raises(ZooError, match="trained on classes"):
        Resnet18.load(task, wrong, cfg, ctx)


def test_trains_in_channels_last_and_records_it(demo, tmp_path):
    from zoo.training.cpu import mark, records_since

    position = mark()
    c = Conformance("mobilenet_v3_small", "classify", tmp_path, dataset=demo)
    assert len(c.fit().predictions) == len(c.val.images)
    assert [(r["channels_last"], r["precision"]) for r in records_since(position)] == [(True, "fp32")]
