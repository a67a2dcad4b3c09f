"""Property: any mutation of one file of a valid dataset, read by its reader (named or
detected), gives a Dataset or a ZooError, never another exception, and the source folder
is byte for byte unchanged. The seeds and the long run (10,000 cases per reader, under a
memory and time cap, writers included) are in bench/fuzz.py; here a few dozen cases per
reader keep the suite fast."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.adapters.common import max_image_pixels
from zoo.errors import ZooError
from zoo.data.reading import read_dataset

REPO = Path(__file__).resolve().parents[1]


def _bench_fuzz():
    spec = importlib.util.spec_from_file_location("bench_fuzz", REPO / "bench" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FUZZ = _bench_fuzz()

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from([1e17, -1e14, 100_000, "../../etc/passwd", "/proc/self/environ", "a\nb", "x" * 300]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
images = st.sampled_from([b"", b"not an image", FUZZ.bomb_png()]) | st.binary(max_size=64)
tokens = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<&"), max_size=10) \
    | scalars.map(str)


def _mutate(data, f: Path) -> None:
    """Draw one mutation of file ``f`` and apply it."""
    raw = f.read_bytes()
    suffix = f.suffix.lower()
    if suffix in (".png", ".jpg"):
        f.write_bytes(data.draw(images))
    elif data.draw(st.integers(0, 9)) == 0:  # cut anywhere
        f.write_bytes(raw[: data.draw(st.integers(0, len(raw)))])
    elif suffix == ".json":
        tree = json.loads(raw)
        paths = [p for p, _ in FUZZ._paths(tree)]
        path = data.draw(st.sampled_from(paths))
        tree = FUZZ._set(tree, path, data.draw(json_values))
        f.write_text(json.dumps(tree))
    else:  # XML, YOLO lines, YAML: one token (text between separators) replaced
        import re

        pieces = re.split(rb"([<>\s:\[\],]+)", raw)
        k = data.draw(st.integers(0, len(pieces) - 1))
        pieces[k] = data.draw(tokens).encode("utf-8")
        f.write_bytes(b"".join(pieces))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    base = tmp_path_factory.mktemp("seeds")
    return {reader: FUZZ.build_seed(reader, base / reader) for reader in FUZZ.READERS}


@pytest.mark.parametrize("reader", FUZZ.READERS)
# ZOO_FUZZ_EXAMPLES=2000 for a longer, randomised search (the suite's run is fixed and short)
@settings(max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", 40)), deadline=None,
          derandomize="ZOO_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_file_gives_dataset_or_zoo_error(seeds, reader, data):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(seeds[reader], src)
        files = sorted(p for p in src.rglob("*") if p.is_file())
        _mutate(data, data.draw(st.sampled_from(files)))
        before = FUZZ.tree_hash(src)
        for fmt in (reader, "auto"):
            try:
                ds = read_dataset(src, fmt=fmt)
            except ZooError:
                continue
            assert len(ds.images) > 0
            for rec in ds.images:
                assert 0 < rec.width * rec.height <= max_image_pixels()
        assert FUZZ.tree_hash(src) == before
