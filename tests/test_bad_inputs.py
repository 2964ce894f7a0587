"""Bad input files: each case is refused with one line that names the file, says what is wrong and what to do.

Cases (docs/troubleshooting.md, "Bad input files"): truncated TIFFs, headers that declare huge images, label
values too large for uint32, stacks with pages missing, negative labels, JSON files of another kind given as a
shape model, and CTC frames that only a per-frame header check finds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_bvdm.cli import main
from napari_bvdm.io.readers import read_ctc, read_tiff, read_video
from napari_bvdm.io.validator import validate_ctc
from napari_bvdm.io.video import InputError

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _truncate(path: Path, share: float = 0.1) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return path


def _stack(path: Path, frames: int = 5, compression: str | None = None, **kw) -> Path:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (frames, 64, 64), dtype=np.uint8) if frames > 1 else \
        rng.integers(0, 255, (64, 64), dtype=np.uint8)
    tifffile.imwrite(path, data, compression=compression, photometric="minisblack", **kw)
    return path


def _ctc(root: Path, n: int = 4, label_dtype=np.uint16) -> Path:
    """A small CTC dataset ``root/DS`` (raw 48x48 uint8 frames, two tracks in 01_GT/TRA)."""
    ds = root / "DS"
    (ds / "01").mkdir(parents=True)
    (ds / "01_GT" / "TRA").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for t in range(n):
        tifffile.imwrite(ds / "01" / f"t{t:03d}.tif", rng.integers(0, 255, (48, 48), dtype=np.uint8))
        lab = np.zeros((48, 48), label_dtype)
        lab[5:15, 5 + t:15 + t] = 1
        lab[25:40, 20:35] = 2
        tifffile.imwrite(ds / "01_GT" / "TRA" / f"man_track{t:03d}.tif", lab, compression="zlib")
    (ds / "01_GT" / "TRA" / "man_track.txt").write_text(f"1 0 {n - 1} 0\n2 0 {n - 1} 0\n")
    return ds


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run ``bvdm argv``; assert exit status 2 and a one-line message without a traceback; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _patch_size(path: Path, width: int, height: int) -> Path:
    """Make every page's header declare ``height`` x ``width`` pixels (the data stay as they are)."""
    with tifffile.TiffFile(path, mode="r+") as tif:
        for page in tif.pages:
            page.tags["ImageWidth"].overwrite(width)
            page.tags["ImageLength"].overwrite(height)
            if "RowsPerStrip" in page.tags:
                page.tags["RowsPerStrip"].overwrite(height)
    return path


# --------------------------------------------------------------------------------------------
# 1. truncated TIFF
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [None, "zlib", "lzw"])
@pytest.mark.parametrize("frames", [1, 5])
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_tiff(tmp_path, compression, frames, lazy):
    path = _truncate(_stack(tmp_path / "v.tif", frames, compression))
    with pytest.raises(InputError, match=r"v\.tif is truncated or damaged: .*copy the file again"):
        np.asarray(read_video(path, lazy=lazy).image)


def test_truncated_tiff_header_bytes(tmp_path):
    """A file cut inside the 8-byte TIFF header (tifffile raises struct.error there)."""
    path = _stack(tmp_path / "v.tif")
    path.write_bytes(path.read_bytes()[:3])
    with pytest.raises(InputError, match="is truncated or damaged: it has only 3 bytes"):
        read_tiff(path)


@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_tiff_in_frame_folder_and_ctc_sequence(tmp_path, lazy):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(3):
        _stack(folder / f"f{t}.tif", 1, "zlib")
    _truncate(folder / "f1.tif")
    with pytest.raises(InputError, match=r"f1\.tif is truncated or damaged"):
        np.asarray(read_video(folder, lazy=lazy).image)
    ds = _ctc(tmp_path)
    _truncate(ds / "01" / "t002.tif")
    with pytest.raises(InputError, match=r"t002\.tif is truncated or damaged"):
        read_ctc(ds, lazy=lazy)


def test_truncated_tiff_through_the_cli(tmp_path, capsys):
    path = _truncate(_stack(tmp_path / "v.tif", 5, "zlib"))
    assert "truncated or damaged" in _one_line_error(capsys, ["inspect", str(path)])
    assert "truncated or damaged" in _one_line_error(capsys, ["inspect", "--stats", str(path)])


def test_real_data_passes_the_file_checks(gowt1, hela):
    """The integrity checks refuse none of the real files (compressed with LZW and zlib)."""
    from napari_bvdm.io.readers import read_tiff_header

    files = sorted(gowt1.rglob("*.tif")) + sorted(hela.rglob("*.tif"))
    assert len(files) > 100
    for f in files:
        read_tiff_header(f)


# --------------------------------------------------------------------------------------------
# 2. a header that declares a huge image
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression, holds", [(None, "8.0 KiB of pixel data"), ("zlib", "of zlib data")])
@pytest.mark.parametrize("lazy", [False, True])
def test_huge_declared_dimensions(tmp_path, compression, holds, lazy):
    """200000 x 200000 uint16 (74.5 GiB) declared over 64 x 64 pixels: refused before anything is allocated."""
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint16), compression=compression, metadata=None)
    _patch_size(path, 200000, 200000)
    msg = rf"declares 200000 x 200000 pixels of uint16 \(74\.5 GiB\) but holds .*{holds}"
    with pytest.raises(InputError, match=msg):
        read_video(path, lazy=lazy)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_huge_declared_page_count(tmp_path, compression):
    path = tmp_path / "many.tif"
    desc = "ImageJ=1.11a\nimages=300000\nframes=300000\nhyperstack=true\n"
    tifffile.imwrite(path, np.ones((3, 64, 64), np.uint16), description=desc, metadata=None,
                     photometric="minisblack", compression=compression)
    for lazy in (False, True):
        with pytest.raises(InputError, match=r"ImageJ metadata declares 300000 images but it holds 3 page\(s\)"):
            read_video(path, lazy=lazy)


def test_huge_decoded_size_beyond_the_memory_limit(tmp_path, monkeypatch):
    """A plausible file whose pixels do not fit in memory (here: a limit of 1 MiB) is only read lazily."""
    path = tmp_path / "zeros.tif"
    tifffile.imwrite(path, np.zeros((4, 512, 512), np.uint16), compression="zlib", photometric="minisblack")
    monkeypatch.setenv("NAPARI_BVDM_MAX_READ_GB", str(1 / 1024))
    with pytest.raises(InputError, match=r"needs 2\.0 MiB of memory, more than the limit NAPARI_BVDM_MAX_READ_GB"):
        read_video(path)
    lazy = read_video(path, lazy=True).image
    assert lazy[1].shape == (512, 512)  # one frame at a time is fine
    with pytest.raises(InputError, match=r"all 4 frames .* needs 2\.0 MiB"):
        np.asarray(lazy)
    monkeypatch.setenv("NAPARI_BVDM_MAX_READ_GB", "lots")
    with pytest.raises(InputError, match="must be a positive number of GiB"):
        read_video(path)


# --------------------------------------------------------------------------------------------
# 3. label values too large for uint32
# --------------------------------------------------------------------------------------------
def test_huge_label_value_in_track_file(tmp_path, capsys):
    ds = _ctc(tmp_path)
    (ds / "01_GT/TRA/man_track.txt").write_text("1 0 3 0\n99999999999999999999 0 3 0\n")
    msg = r"man_track\.txt, line 2: the number 99999999999999999999 is larger than 4294967295"
    for check in (True, False):
        with pytest.raises(InputError, match=msg):
            read_ctc(ds, lazy=True, check=check)
    (v,) = validate_ctc(ds)
    assert v.rule == "format" and "99999999999999999999" in v.message
    assert "99999999999999999999" in _one_line_error(capsys, ["inspect", str(ds)])


def test_huge_label_value_in_label_images(tmp_path, capsys):
    ds = _ctc(tmp_path, label_dtype=np.uint64)
    p = ds / "01_GT/TRA/man_track001.tif"
    lab = tifffile.imread(p)
    lab[lab == 2] = 2**40
    tifffile.imwrite(p, lab)
    msg = r"man_track001\.tif: label value 1099511627776 is larger than 4294967295"
    with pytest.raises(InputError, match=msg):
        read_ctc(ds, check=False)
    tra = read_ctc(ds, lazy=True, check=False).labels["TRA"]
    tra[0]
    with pytest.raises(InputError, match=msg):
        tra[1]
    assert any(v.rule == 9 and "1099511627776" in v.message for v in validate_ctc(ds))
    assert "1099511627776" in _one_line_error(capsys, ["inspect", "--stats", str(ds)])


def test_huge_label_value_in_a_label_tiff_for_fit_shapes(tmp_path, capsys):
    lab = np.zeros((4, 64, 64), np.uint64)
    lab[:, 5:20, 5:20] = 1
    lab[:, 30:50, 30:50] = 2**63 + 7
    tifffile.imwrite(tmp_path / "u64.tif", lab, photometric="minisblack")
    tifffile.imwrite(tmp_path / "f64.tif", np.where(lab > 1, 1e20, lab.astype(np.float64)), photometric="minisblack")
    out = str(tmp_path / "m.json")
    err = _one_line_error(capsys, ["fit-shapes", str(tmp_path / "u64.tif"), "-o", out, "--quiet"])
    assert "u64.tif (frame 0): label value 9223372036854775815 is larger than 4294967295" in err
    err = _one_line_error(capsys, ["fit-shapes", str(tmp_path / "f64.tif"), "-o", out, "--quiet"])
    assert "f64.tif is a float64 image (frame 0 up to 1e+20), not a label video" in err
    assert not Path(out).exists()


# --------------------------------------------------------------------------------------------
# 4. pages missing from a stack
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_zlib_stack_is_not_read_as_fewer_frames(tmp_path, lazy):
    path = _truncate(_stack(tmp_path / "v.tif", 5, "zlib"), 0.5)
    with pytest.raises(InputError, match=r"truncated or damaged: its list of pages breaks off after 3 page\(s\) \(the "
                                         r"next page should start at byte \d+ but the file has only \d+ bytes\)"):
        read_video(path, lazy=lazy)


def test_declared_pages_missing_from_an_imagej_stack(tmp_path):
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, np.ones((3, 64, 64), np.uint16), description="ImageJ=1.11a\nimages=5\nframes=5\n",
                     metadata=None, photometric="minisblack", compression="zlib")
    with pytest.raises(InputError, match=r"ImageJ metadata declares 5 images but it holds 3 page\(s\)"):
        read_video(path, lazy=True)


def test_inspect_on_a_truncated_stack_fails(tmp_path, capsys):
    path = _truncate(_stack(tmp_path / "v.tif", 5, "zlib"), 0.5)
    assert "breaks off after 3 page(s)" in _one_line_error(capsys, ["inspect", str(path)])


# --------------------------------------------------------------------------------------------
# 5. negative labels
# --------------------------------------------------------------------------------------------
def test_negative_int16_labels_in_a_lazy_ctc_sequence(tmp_path, capsys):
    ds = _ctc(tmp_path, label_dtype=np.int16)
    p = ds / "01_GT/TRA/man_track002.tif"
    lab = tifffile.imread(p)
    lab[0:3, 0:3] = -1
    tifffile.imwrite(p, lab)
    tra = read_ctc(ds, lazy=True, check=False).labels["TRA"]
    tra[1]
    with pytest.raises(InputError, match=r"man_track002\.tif: labels contain negative values \(min -1\)"):
        tra[2]
    with pytest.raises(InputError, match=r"man_track002\.tif: labels contain negative values"):
        np.asarray(tra)
    with pytest.raises(InputError, match=r"man_track002\.tif: labels contain negative values"):
        read_ctc(ds, lazy=True)
    assert "man_track002.tif: labels contain negative" in _one_line_error(capsys, ["inspect", "--stats", str(ds)])
    assert any(v.rule == 9 and "negative" in v.message and "man_track002" in v.message for v in validate_ctc(ds))


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_negative_int16_labels_in_a_label_tiff_for_fit_shapes(tmp_path, capsys, compression):
    lab = np.zeros((6, 64, 64), np.int16)
    for t in range(6):
        lab[t, 5 + t:20 + t, 5:20] = 1
        lab[t, 30:50, 30 + t:50 + t] = 2
    lab[3, 40:55, 5:20] = -1
    tifffile.imwrite(tmp_path / "lab.tif", lab, compression=compression, photometric="minisblack")
    out = tmp_path / "m.json"
    err = _one_line_error(capsys, ["fit-shapes", str(tmp_path / "lab.tif"), "-o", str(out), "--quiet"])
    assert "lab.tif (frame 3): labels contain negative values (min -1)" in err and "uint16" in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 6. a JSON file of another kind given as a shape model
# --------------------------------------------------------------------------------------------
def _bundled_model() -> dict:
    from napari_bvdm.shapes.model import ShapeModel

    return ShapeModel.default().to_dict()


def _other_json(kind: str) -> tuple[dict, str]:
    from napari_bvdm.shapes.model import FitConfig
    from napari_bvdm.synthesis.config import GenerateConfig
    from napari_bvdm.synthesis.export import RECORD_FORMAT
    from napari_bvdm.widgets._settings import RUN_SETTINGS_FORMAT

    if kind == "other kind":
        return {**_bundled_model(), "kind": "texture-ddpm"}, "a napari-bvdm file of kind 'texture-ddpm'"
    if kind == "synthesis record":
        rec = {"format": RECORD_FORMAT, "version": 1, "videos": {},
               "run": {"models": {"shapes": {"path": "/data/models/shapes.json", "sha256": "0"}}}}
        return rec, r"a synthesis record \(the synthesis.json of a generated dataset\)"
    if kind == "run settings":
        settings = {"format": RUN_SETTINGS_FORMAT, "device": "cpu", "fit_shapes": {}}
        return settings, r"a run-settings file \(saved by the GUI for `bvdm \.\.\. --settings`\)"
    if kind == "texture config":
        return {"unet": {"base": 32}, "crop_size": 96, "T": 1000, "cell_level": None}, "a texture-model configuration"
    if kind == "generate config":
        return GenerateConfig().to_dict(), r"a `bvdm generate` configuration \(docs/parameters\.md\)"
    if kind == "fit settings":
        return FitConfig().to_dict(), r"fit-shapes settings \(FitConfig\)"
    if kind == "weights":
        from napari_bvdm.runtime.weights import FORMAT

        return {"format": FORMAT, "kind": "flow"}, "model-weights metadata"
    return {"format": "something-else", "kind": "x"}, "a file of format 'something-else' \\(kind 'x'\\)"


@pytest.mark.parametrize("kind", ["other kind", "synthesis record", "run settings", "texture config",
                                  "generate config", "fit settings", "weights", "other format"])
def test_shape_model_of_wrong_kind(tmp_path, kind):
    from napari_bvdm.shapes.model import ShapeModel, ShapeModelError

    data, what = _other_json(kind)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match=rf"model\.json is {what}, not a napari-bvdm shape model: give the "
                                              r"\.json file that `bvdm fit-shapes` writes") as e:
        ShapeModel.load(path)
    if kind == "synthesis record":
        assert str(e.value).endswith("; this dataset was made with the shape model /data/models/shapes.json")


def test_shape_model_of_wrong_kind_through_the_cli(tmp_path, capsys):
    data, _ = _other_json("synthesis record")
    rec = tmp_path / "synthesis.json"
    rec.write_text(json.dumps(data))
    err = _one_line_error(capsys, ["simulate-masks", str(rec), "-o", str(tmp_path / "out"), "--quiet"])
    assert "is a synthesis record" in err
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_other_json("other kind")[0]))
    err = _one_line_error(capsys, ["generate", "--shapes", str(other), "-o", str(tmp_path / "gen"), "--quiet"])
    assert "is a napari-bvdm file of kind 'texture-ddpm'" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "gen").exists()


# --------------------------------------------------------------------------------------------
# 7. `bvdm validate`: every frame's header, pixels with --deep
# --------------------------------------------------------------------------------------------
def _break_frame(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("frame 2 went missing during the copy\n")
    elif how == "wrong size":
        tifffile.imwrite(path, np.zeros((40, 48), np.uint8))
    elif how == "wrong dtype":
        tifffile.imwrite(path, np.zeros((48, 48), np.uint16))
    elif how == "truncated":
        _truncate(path)


@pytest.mark.parametrize("how, rule, says", [
    ("missing", "naming", r"01/: raw frames missing: \[2\]"),
    ("empty", "file", r"01/t002\.tif is empty \(0 bytes\)"),
    ("text", "file", r"01/t002\.tif is not a TIFF file \(it starts with the text 'frame 2 went missing"),
    ("wrong size", 10, r"01/t002\.tif has shape \(40, 48\) but 01/t000\.tif has \(48, 48\)"),
    ("wrong dtype", "format", r"01/t002\.tif has uint16 pixels but 01/t000\.tif has uint8"),
    ("truncated", "file", r"01/t002\.tif is truncated or damaged: page 0's pixel data ends at byte"),
])
def test_validate_checks_every_frame(tmp_path, capsys, how, rule, says):
    ds = _ctc(tmp_path)
    _break_frame(ds / "01" / "t002.tif", how)
    (v,) = validate_ctc(ds)
    assert v.rule == rule and re.search(says, v.message), v
    assert main(["validate", str(ds)]) == 1
    out = capsys.readouterr().out
    assert "INVALID, 1 problem(s)" in out and ("t002.tif" in out or how == "missing")


def test_validate_deep_decodes_the_pixels(tmp_path, capsys):
    ds = _ctc(tmp_path)
    p = ds / "01" / "t002.tif"
    tifffile.imwrite(p, np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8), compression="zlib")
    with tifffile.TiffFile(p) as tif:
        start, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data = bytearray(p.read_bytes())
    data[start + 10:start + count - 10] = bytes(count - 20)  # damaged zlib stream, header intact
    p.write_bytes(bytes(data))
    assert validate_ctc(ds) == []
    assert main(["validate", str(ds)]) == 0
    assert "raw frame headers" in capsys.readouterr().out
    (v,) = validate_ctc(ds, deep=True)
    assert v.rule == "file" and "01/t002.tif is truncated or damaged: the pixel data cannot be decoded" in v.message
    assert main(["validate", "--deep", str(ds)]) == 1
    assert "[file] 01/t002.tif is truncated or damaged" in capsys.readouterr().out
    assert main(["validate", "--deep", str(_ctc(tmp_path / "clean"))]) == 0
    assert "every raw frame decoded" in capsys.readouterr().out


def test_validate_reports_a_broken_label_image(tmp_path):
    ds = _ctc(tmp_path)
    _truncate(ds / "01_GT/TRA/man_track001.tif", 0.5)
    problems = validate_ctc(ds)
    assert any(v.rule == "file" and v.message.startswith("01_GT/TRA: man_track001.tif is truncated or damaged")
               for v in problems), problems


def test_validate_help_documents_deep(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    assert "--deep" in out and "decode every raw frame" in out
