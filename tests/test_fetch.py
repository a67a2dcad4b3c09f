"""zoo.training.fetch against a local HTTP server on 127.0.0.1 standing in for a mirror: never the internet."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from flat_options import compare_options, run_options

from zoo.training import fetch
from zoo.errors import ZooError


class _Mirror:
    """A folder served over HTTP on 127.0.0.1; ``requests`` lists the paths asked for."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):  # noqa: N802 - http.server's name
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serve(root: Path, files: dict[str, bytes]):
    """A mirror on 127.0.0.1 serving ``files`` from ``root`` (for other tests, too)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    m = _Mirror(root)
    m.root = root
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    with serve(tmp_path / "mirror", {}) as m:
        monkeypatch.setenv("ZOO_WEIGHTS_MIRROR", m.url)
        monkeypatch.delenv("ZOO_OFFLINE", raising=False)
        monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
        yield m


def _publish(mirror, name: str, data: bytes) -> str:
    (mirror.root / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


UPSTREAM = "https://example.invalid/releases/v1"


def test_fetches_from_the_mirror_verifies_and_records(mirror, tmp_path):
    data = b"weights" * 50_000
    digest = _publish(mirror, "net.pt", data)
    dest = tmp_path / "cache" / "net.pt"
    start = fetch.mark()
    assert fetch.fetch(f"{UPSTREAM}/net.pt", dest, sha256=digest) == dest
    assert dest.read_bytes() == data
    assert mirror.requests == ["/net.pt"]  # the mirror's URL for the upstream file name
    assert fetch.records_since(start) == [
        {"file": str(dest), "url": f"{mirror.url}/net.pt", "sha256": digest, "fetched": True}
    ]
    assert [p.name for p in dest.parent.iterdir()] == ["net.pt"]  # no temporary file left


def test_the_cache_is_reused_without_a_request(mirror, tmp_path):
    digest = _publish(mirror, "net.pt", b"abc" * 1000)
    dest = tmp_path / "cache" / "net.pt"
    fetch.fetch(f"{UPSTREAM}/net.pt", dest, sha256=digest)
    start = fetch.mark()
    fetch.fetch(f"{UPSTREAM}/net.pt", dest, sha256=digest)
    assert mirror.requests == ["/net.pt"]
    assert fetch.records_since(start)[0]["fetched"] is False
    assert fetch.records_since(start)[0]["sha256"] == digest


def test_a_hash_mismatch_is_refused_and_nothing_kept(mirror, tmp_path):
    _publish(mirror, "net-0123abcd.pth", b"not what was published")
    dest = tmp_path / "cache" / "net-0123abcd.pth"
    with pytest.raises(ZooError, match="sha256.*0123abcd"):
        fetch.fetch(f"{UPSTREAM}/net-0123abcd.pth", dest, sha256_prefix="0123abcd")
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_a_substituted_cached_file_is_refused(mirror, tmp_path):
    dest = tmp_path / "cache" / "net.pt"
    dest.parent.mkdir()
    dest.write_bytes(b"swapped")
    with pytest.raises(ZooError, match="cached"):
        fetch.fetch(f"{UPSTREAM}/net.pt", dest, sha256="ab" * 32)
    assert mirror.requests == []


def test_offline_fails_at_once_naming_file_url_and_place(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.delenv("ZOO_WEIGHTS_MIRROR")
    dest = tmp_path / "cache" / "net.pt"
    with pytest.raises(ZooError) as e:
        fetch.fetch(f"{UPSTREAM}/net.pt", dest)
    msg = str(e.value)
    assert "\n" not in msg and f"{UPSTREAM}/net.pt" in msg and str(dest) in msg
    assert mirror.requests == []


def test_no_network_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("ZOO_WEIGHTS_MIRROR", raising=False)
    dest = tmp_path / "net.pt"
    # a port nothing listens on: the connection is refused at once, as without a network
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ZooError, match=f"cannot fetch http://127.0.0.1:{port}/net.pt.*put it at {dest}"):
        fetch.fetch(f"http://127.0.0.1:{port}/net.pt", dest)
    assert not dest.exists()


def test_a_missing_file_on_the_mirror_is_one_line(mirror, tmp_path):
    with pytest.raises(ZooError, match="HTTP 404"):
        fetch.fetch(f"{UPSTREAM}/absent.pt", tmp_path / "absent.pt")


def test_torchvision_weights_with_the_wrong_hash_never_reach_the_cache(mirror, tmp_path):
    """A mirror serving a file that is not torchvision's (the hash in its name differs) is
    refused, as torch.hub refuses it, and the torch cache stays empty."""
    torch = pytest.importorskip("torch")
    from torchvision.models import get_model_weights

    from zoo.plugins.tv_models.classifiers import build_classifier

    name = get_model_weights("mobilenet_v3_small").DEFAULT.url.rsplit("/", 1)[1]
    torch.save({"w": torch.zeros(2)}, mirror.root / name)
    with pytest.raises(ZooError, match=f"{mirror.url}/{name} has sha256 .* the source publishes"):
        build_classifier("mobilenet_v3_small", 3, pretrained=True)
    assert mirror.requests == [f"/{name}"]
    cache = tmp_path / "torch-home" / "hub" / "checkpoints"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_run_records_the_fetched_weights_and_compare_applies_one_setting(mirror, tmp_path, tiny_demo):
    """--pretrained (flags) on a run: the file, its URL and sha256 in manifest.json; on a
    compare: every backend the same, said in the leaderboard and compare.json."""
    import toy_backend

    from zoo.pipeline.compare import compare
    from zoo.pipeline.run import execute

    digest = _publish(mirror, "toy-weights.bin", b"published" * 100)
    data = toy_backend.make_dataset(tmp_path / "data", n=8)
    registry = toy_backend.registry()
    result = execute(run_options(task="detect", backend="toy", registry=registry, quiet=True, dataset=data,
                                 flags={"device": "cpu", "pretrained": True}, out=tmp_path / "runs"))
    cached = tmp_path / "zoo-home" / "weights" / "toy" / "toy-weights.bin"
    assert result.manifest.weights == [
        {"file": str(cached), "url": f"{mirror.url}/toy-weights.bin", "sha256": digest, "fetched": True}]
    assert json.loads((result.run_dir / "manifest.json").read_text())["weights"][0]["sha256"] == digest

    compared = compare(compare_options(task="detect", backends=["toy", "oracle"], registry=registry, samples=0,
                                       data=tiny_demo, flags={"device": "cpu", "pretrained": True},
                                       out=tmp_path / "runs"))
    assert compared.pretrained and all(r.ok for r in compared.rows)
    assert mirror.requests == ["/toy-weights.bin"]  # every later run found it in the cache
    md = (compared.folder / "leaderboard.md").read_text()
    assert "Starting weights, the same for every backend: pretrained" in md
    assert json.loads((compared.folder / "compare.json").read_text())["pretrained"] is True
    scratch = compare(compare_options(task="detect", backends=["toy"], registry=registry, samples=0,
                                      data=tiny_demo, flags={"device": "cpu", "pretrained": False},
                                      out=tmp_path / "runs", name="scratch"))
    assert "same for every backend: from scratch" in (scratch.folder / "leaderboard.md").read_text()
    assert scratch.rows[0].manifest.weights is None


def test_pretrained_flag_on_the_command_line_offline(tmp_path, tiny_demo, capsys, monkeypatch):
    """`zoo run --pretrained` offline: one line with the file, its URL and where to put it;
    yolov8 says first that its pickled weights need --trust-weights."""
    from zoo.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    with pytest.raises(SystemExit) as e:
        main(["run", "--task", "classify", "--backend", "mobilenet_v3_small", "--data", str(tiny_demo),
              "--out", str(tmp_path / "runs"), "--device", "cpu", "--epochs", "1", "--pretrained"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    line = next(l for l in err.splitlines() if l.startswith("zoo: error:"))
    assert "is not cached and ZOO_OFFLINE is set; download https://download.pytorch.org/models/mobilenet_v3_small-" in line
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in line

    with pytest.raises(SystemExit) as e:
        main(["run", "--task", "detect", "--backend", "yolov8", "--data", str(tiny_demo),
              "--out", str(tmp_path / "runs"), "--device", "cpu", "--epochs", "1", "--pretrained"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--pretrained for yolov8 needs --trust-weights" in err


def test_smp_encoder_weights_from_a_hub_mirror_into_the_hugging_face_cache(mirror, tmp_path, monkeypatch):
    """smp's encoder files, served at the hub's <repo>/resolve/<revision>/<file> paths by the
    mirror, land in the Hugging Face cache's snapshot where smp loads them offline."""
    pytest.importorskip("segmentation_models_pytorch")
    from huggingface_hub import constants
    from safetensors.torch import save_file

    from zoo.plugins.smp.models import build_model, import_smp

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))  # what HF_HOME sets at import
    smp = import_smp()
    s = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    served = mirror.root / s["repo_id"] / "resolve" / s["revision"]
    served.mkdir(parents=True)
    state = {k: v.clone() for k, v in smp.encoders.get_encoder("resnet18", weights=None).state_dict().items()}
    state["conv1.weight"].fill_(0.5)
    save_file(state, served / "model.safetensors")
    (served / "config.json").write_text("{}")
    model = build_model("Unet", encoder="resnet18", classes=2, pretrained=True)
    assert bool((model.encoder.conv1.weight == 0.5).all())
    build_model("Unet", encoder="resnet18", classes=2, pretrained=True)  # the second time: the cache
    assert mirror.requests == [f"/{s['repo_id']}/resolve/{s['revision']}/{f}" for f in ("config.json", "model.safetensors")]
