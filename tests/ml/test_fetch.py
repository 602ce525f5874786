"""fetch_model end to end, offline: file:// and a local HTTP server, verification, failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from photobox.ml.fetch import ChecksumError, FetchError, UnpinnedError, fetch_model
from photobox.ml.quantize import RECIPES, Int8Cpu, int8_cpu
from photobox.ml.registry import load_installed
from tests.ml.helpers import file_override, leftovers, serve, write_manifest
from tests.ml.tinymodels import tiny_manifest


def _http_override(base: str) -> dict[str, str]:
    return {"image": f"{base}/visual/model.onnx", "text": f"{base}/textual/model.onnx",
            "tokenizer": f"{base}/textual/tokenizer.json"}


def test_fetch_from_file_urls_quantizes_and_records(installed, models_dir: Path, tiny):
    assert installed.status == "installed"
    record = load_installed(models_dir)["tiny-clip"]
    assert record.installed_at and record.dir == f"tiny-clip/{record.revision}"
    for key in ("image", "text"):
        f = record.files[key]
        path = models_dir / f.path
        assert f.quantized and f.format == "onnx-int8" and path.name == f"{key}.int8.onnx"
        assert f.original_sha256 == tiny.sha256(key) and f.original_size == tiny.size(key)
        assert f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and f.size == path.stat().st_size
        ops = {n.op_type for n in onnx.load(path).graph.node}
        assert "MatMulInteger" in ops and "MatMul" not in ops  # really int8
        assert not f.trusted_on_first_use
    tok = record.files["tokenizer"]
    assert not tok.quantized and tok.sha256 == tok.original_sha256 == tiny.sha256("tokenizer")
    recipe = int8_cpu().recipes[0]  # the fastest recipe that is exact on this CPU
    assert record.quantization["recipe"] == recipe and record.quantization["cpu"] == int8_cpu().cls
    assert record.quantization["weight_type"] == RECIPES[recipe].weight_type
    assert record.quantization["per_channel"] is True
    assert record.quantization["op_types"] == ["MatMul"]
    assert record.checks["image_int8_cosine"] > 0.99 and record.checks["text_int8_cosine"] > 0.99
    # The fp32 originals are not kept, and nothing but the install folder and the record remain.
    assert leftovers(models_dir) == sorted(["installed.json", "tiny-clip", record.dir,
                                            record.files["image"].path, record.files["text"].path,
                                            record.files["tokenizer"].path])


def test_fetch_over_http_reports_progress(models_dir, manifests_dir, tiny, http_repo):
    base, requests = http_repo
    events = []
    result = fetch_model("tiny-clip", models_dir, source_override=_http_override(base), manifests_dir=manifests_dir,
                         progress=lambda stage, done, total: events.append((stage, done, total)))
    assert result.status == "installed"
    assert sorted(requests) == ["/textual/model.onnx", "/textual/tokenizer.json", "/visual/model.onnx"]
    downloads = [e for e in events if e[0] == "download image"]
    assert downloads[0] == ("download image", 0, tiny.size("image"))
    assert downloads[-1] == ("download image", tiny.size("image"), tiny.size("image"))
    assert [d[1] for d in downloads] == sorted(d[1] for d in downloads)
    stages = list(dict.fromkeys(e[0] for e in events))
    assert stages == ["download image", "download text", "download tokenizer", "quantize image", "quantize text",
                      "check"]


def test_fetch_is_idempotent(installed, models_dir, manifests_dir, tiny):
    before = (models_dir / "installed.json").read_bytes()
    with serve(tiny.root) as (base, requests):
        events = []
        again = fetch_model("tiny-clip", models_dir, source_override=_http_override(base),
                            manifests_dir=manifests_dir, progress=lambda *e: events.append(e))
    assert again.status == "already-installed" and requests == [] and events == []
    assert again.record.revision == installed.record.revision
    assert (models_dir / "installed.json").read_bytes() == before
    # verify_installed re-hashes: still nothing to do.
    assert fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir,
                       verify_installed=True).status == "already-installed"


def test_damaged_install_is_fetched_again(installed, models_dir, manifests_dir, tiny):
    path = models_dir / installed.record.files["image"].path
    path.write_bytes(b"garbage")
    result = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir)
    assert result.status == "installed" and result.record.revision == installed.record.revision
    assert path.stat().st_size == installed.record.files["image"].size


def test_checksum_mismatch_refuses_and_installs_nothing(models_dir, tmp_path, tiny):
    manifest = tiny_manifest(tiny)
    manifest["files"]["text"]["sha256"] = "0" * 64
    write_manifest(tmp_path / "m", manifest)
    with pytest.raises(ChecksumError, match="sha256 mismatch") as err:
        fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert tiny.sha256("text") in str(err.value)
    assert leftovers(models_dir) == []


def test_size_mismatch_refuses(models_dir, tmp_path, tiny):
    manifest = tiny_manifest(tiny)
    manifest["files"]["image"]["size"] += 1
    write_manifest(tmp_path / "m", manifest)
    with pytest.raises(ChecksumError, match="bytes"):
        fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert leftovers(models_dir) == []


def test_interrupted_download_leaves_no_partial_file(models_dir, manifests_dir, tiny):
    with serve(tiny.root, truncate_at=1000) as (base, _):
        with pytest.raises(FetchError, match="interrupted"):
            fetch_model("tiny-clip", models_dir, source_override=_http_override(base), manifests_dir=manifests_dir,
                        timeout=5)
    assert leftovers(models_dir) == []


def test_interrupt_from_the_keyboard_leaves_nothing(models_dir, manifests_dir, tiny):
    def progress(stage, done, total):
        if stage == "download text" and done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir,
                    progress=progress)
    assert leftovers(models_dir) == []


def test_unreachable_server_is_a_fetch_error(models_dir, manifests_dir):
    override = {k: "http://127.0.0.1:9/nothing" for k in ("image", "text", "tokenizer")}
    with pytest.raises(FetchError):
        fetch_model("tiny-clip", models_dir, source_override=override, manifests_dir=manifests_dir, timeout=2)
    with serve(Path("/nonexistent")) as (base, _):
        with pytest.raises(FetchError, match="HTTP 404"):
            fetch_model("tiny-clip", models_dir, source_override=_http_override(base), manifests_dir=manifests_dir)
    assert leftovers(models_dir) == []


def test_stale_staging_folder_is_removed(models_dir, manifests_dir, tiny):
    stale = models_dir / ".staging-tiny-clip-dead"
    stale.mkdir(parents=True)
    (stale / "image.onnx").write_bytes(b"half")
    fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir)
    assert not stale.exists()


def test_unpinned_files_need_trust_on_first_use(models_dir, tmp_path, tiny):
    write_manifest(tmp_path / "m", tiny_manifest(tiny, pinned=False))
    kwargs = dict(source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    with pytest.raises(UnpinnedError, match="trust-on-first-use"):
        fetch_model("tiny-clip", models_dir, **kwargs)
    assert leftovers(models_dir) == []

    result = fetch_model("tiny-clip", models_dir, trust_on_first_use=True, **kwargs)
    assert result.status == "installed"
    assert len(result.warnings) == 3 and all("TRUST ON FIRST USE" in w for w in result.warnings)
    files = load_installed(models_dir)["tiny-clip"].files
    assert all(f.trusted_on_first_use for f in files.values())
    assert files["image"].original_sha256 == tiny.sha256("image")
    # From now on the recorded hash is the pin: no flag needed, nothing to do.
    assert fetch_model("tiny-clip", models_dir, **kwargs).status == "already-installed"


def test_recorded_first_use_hash_is_enforced_on_refetch(models_dir, tmp_path, tiny):
    write_manifest(tmp_path / "m", tiny_manifest(tiny, pinned=False))
    kwargs = dict(manifests_dir=tmp_path / "m")
    fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), trust_on_first_use=True, **kwargs)
    record = load_installed(models_dir)["tiny-clip"]
    (models_dir / record.files["image"].path).unlink()  # needs a download again…
    other = tmp_path / "evil.onnx"
    other.write_bytes(tiny.text.read_bytes())  # …and the "server" now serves something else
    with pytest.raises(ChecksumError):
        fetch_model("tiny-clip", models_dir, source_override={**file_override(tiny), "image": str(other)}, **kwargs)


def test_new_pin_installs_a_new_revision_and_removes_the_old(installed, models_dir, tmp_path, tiny):
    from tests.ml.tinymodels import build_image_model

    new_image = build_image_model(tmp_path / "v2" / "visual" / "model.onnx", dim=32, fixed_batch=None)
    # Change the bytes (same contract) to simulate a new upstream version.
    model = onnx.load(new_image)
    model.doc_string = "v2"
    onnx.save(model, new_image)
    manifest = tiny_manifest(tiny)
    manifest["files"]["image"].update(sha256=hashlib.sha256(new_image.read_bytes()).hexdigest(),
                                      size=new_image.stat().st_size)
    write_manifest(tmp_path / "m2", manifest)
    result = fetch_model("tiny-clip", models_dir, source_override={**file_override(tiny), "image": new_image.as_uri()},
                         manifests_dir=tmp_path / "m2")
    assert result.status == "installed" and result.record.revision != installed.record.revision
    assert not (models_dir / installed.record.dir).exists()
    assert (models_dir / result.record.dir).is_dir()


def test_a_manifest_only_change_updates_the_record_without_downloading(installed, models_dir, tmp_path, tiny):
    manifest = tiny_manifest(tiny, description="Better words.")
    write_manifest(tmp_path / "m3", manifest)
    result = fetch_model("tiny-clip", models_dir, source_override={}, manifests_dir=tmp_path / "m3")
    assert result.status == "already-installed"
    assert load_installed(models_dir)["tiny-clip"].manifest.description == "Better words."


def test_int8_too_far_from_the_original_falls_back_to_fp32(models_dir, tmp_path, tiny):
    manifest = tiny_manifest(tiny)
    manifest["quantize_options"]["min_cosine"] = 1.01  # impossible: every int8 model "drifts"
    write_manifest(tmp_path / "m", manifest)
    result = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    record = result.record
    assert result.status == "installed" and record.quantization is None
    assert not record.files["image"].quantized and record.files["image"].sha256 == tiny.sha256("image")
    assert record.checks["int8_refused_on"] == int8_cpu().cls
    tried = record.checks["int8_tried"]
    assert all(f"{recipe}: cosine" in tried for recipe in int8_cpu().recipes)  # every exact recipe was tried
    assert any("fp32 original is used" in w for w in result.warnings)
    assert not list((models_dir / record.dir).glob("*.int8*"))  # no int8 leftovers
    # fp32 is the right answer on this CPU: fetching again does nothing.
    again = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert again.status == "already-installed"


def test_a_recipe_that_is_inexact_on_a_new_cpu_is_quantized_again(models_dir, tmp_path, tiny, monkeypatch):
    """The data folder moves from a CPU where int8 weights are exact to one where they saturate."""
    import photobox.ml.fetch as fetch

    manifest = tiny_manifest(tiny)
    manifest["quantize_options"]["warn_cosine"] = 0.5  # take s8 whatever this CPU makes of it
    write_manifest(tmp_path / "m", manifest)
    monkeypatch.setattr(fetch, "int8_cpu", lambda: Int8Cpu("arm64/s8,u8,s7", ("s8", "u8", "s7"), "test"))
    first = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert first.record.quantization["recipe"] == "s8"
    monkeypatch.setattr(fetch, "int8_cpu", lambda: Int8Cpu("x86_64/u8,s7", ("u8", "s7"), "test"))
    second = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert second.status == "installed" and second.record.quantization["recipe"] == "u8"
    assert second.record.quantization["cpu"] == "x86_64/u8,s7"
    # u8 is exact everywhere: moving back to the first CPU keeps it.
    monkeypatch.setattr(fetch, "int8_cpu", lambda: Int8Cpu("arm64/s8,u8,s7", ("s8", "u8", "s7"), "test"))
    third = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert third.status == "already-installed"


def test_quantize_none_installs_fp32_as_published(models_dir, tmp_path, tiny):
    write_manifest(tmp_path / "m", tiny_manifest(tiny, quantize="none"))
    result = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    files = result.record.files
    assert not files["image"].quantized and files["image"].sha256 == tiny.sha256("image")
    assert result.record.quantization is None and result.record.checks == {}


def test_keep_originals(models_dir, manifests_dir, tiny):
    result = fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir,
                         keep_originals=True)
    folder = models_dir / result.record.dir
    assert (folder / "image.onnx").read_bytes() == tiny.image.read_bytes()


def test_wrong_contract_is_caught_at_fetch_time(models_dir, tmp_path, tiny):
    manifest = tiny_manifest(tiny, embedding_size=64)  # the model gives 32
    write_manifest(tmp_path / "m", manifest)
    with pytest.raises(FetchError, match="64"):
        fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    manifest = tiny_manifest(tiny, input_names={"image": "pixel_values", "text": "text"})
    write_manifest(tmp_path / "m", manifest)
    with pytest.raises(FetchError, match="pixel_values"):
        fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
    assert leftovers(models_dir) == []


def test_unknown_override_key_and_model(models_dir, manifests_dir):
    with pytest.raises(FetchError, match="unknown keys"):
        fetch_model("tiny-clip", models_dir, source_override={"vision": "x"}, manifests_dir=manifests_dir)
    with pytest.raises(KeyError):
        fetch_model("no-such-model", models_dir, manifests_dir=manifests_dir)


def test_damaged_installed_json_is_set_aside(models_dir, manifests_dir, tiny):
    models_dir.mkdir(parents=True)
    (models_dir / "installed.json").write_text("{oops")
    fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir)
    assert "tiny-clip" in load_installed(models_dir)
    assert len(list(models_dir.glob("installed.json.damaged-*"))) == 1
    assert json.loads((models_dir / "installed.json").read_text())["version"] == 1


def test_adding_a_pin_after_trust_on_first_use_needs_no_download(models_dir, tmp_path, tiny):
    write_manifest(tmp_path / "m", tiny_manifest(tiny, pinned=False))
    fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m",
                trust_on_first_use=True)
    write_manifest(tmp_path / "m", tiny_manifest(tiny, pinned=True))  # the real hashes, published later
    result = fetch_model("tiny-clip", models_dir, source_override={}, manifests_dir=tmp_path / "m")
    assert result.status == "already-installed"
    assert not any(f.trusted_on_first_use for f in load_installed(models_dir)["tiny-clip"].files.values())
