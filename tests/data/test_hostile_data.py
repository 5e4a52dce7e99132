"""Hostile or damaged data files, by class: a DataError naming the file (validate: exit 2 at data.path, no
traceback), never a hang, never an allocation the header did not justify (issue 12)."""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import signal
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from layerforge.errors import DataError
from tests.data.conftest import load_data, make_spec
from tests.helpers import run_cli, write_spec


@contextlib.contextmanager
def no_hang(seconds: int = 20):
    """Fail (instead of hanging the suite) if the block blocks."""
    def fail(*_):
        raise AssertionError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def csv_text(rows: int = 20) -> str:
    return "a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(rows))


def corrupt_gzip(p: Path) -> None:
    data = bytearray(gzip.compress(csv_text(400).encode()))
    data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8
    p.write_bytes(bytes(data))


def long_field(p: Path) -> None:
    p.write_text("a,b,y\n1,2,0\n3," + "9" * 200_000 + ",1\n")


def npz_bad_crc(p: Path) -> None:
    np.savez(p, x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2)
    data = bytearray(p.read_bytes())
    at = data.index(b"\x00\x00\x00\x00\x00\x00\xf0?")  # 1.0 inside x, stored uncompressed
    data[at + 7] ^= 0x01
    p.write_bytes(bytes(data))


def npy_lying_header(p: Path) -> None:
    """A 1 KB file whose header says (10^9, 4) float64: 32 GB."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 4)})
    p.write_bytes(buf.getvalue() + b"\x00" * 1024)


def npz_lying_member(p: Path) -> None:
    """An archive whose member header claims far more data than the archive holds for it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 4)})
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.npy", buf.getvalue() + b"\x00" * 64)
        z.writestr("y.npy", b"")


def png_header_only(width: int, height: int):
    def write(p: Path) -> None:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        p.mkdir(exist_ok=True)
        for cls in ("a", "b"):
            (p / cls).mkdir(exist_ok=True)
            (p / cls / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                               + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return write


def fifo(p: Path) -> None:
    os.mkfifo(p)


def dev_zero(p: Path) -> None:
    p.symlink_to("/dev/zero")


def duplicate_columns(p: Path) -> None:
    names = [f"c{i}" for i in range(100_000)] + ["c7", "y"]
    p.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")


# case → (file name, writer, data block, input_shape, words the error says)
CASES = {
    "corrupt_gzip": ("t.csv.gz", corrupt_gzip, {"target": "y"}, [2], ["t.csv.gz", "damaged"]),
    "csv_field_over_limit": ("t.csv", long_field, {"target": "y"}, [2], ["t.csv", "line 3", "field larger"]),
    "npz_bad_crc": ("d.npz", npz_bad_crc, {}, [2], ["d.npz", "array 'x'", "CRC"]),
    "npy_header_lies": ("x.npy", npy_lying_header, {"target_path": "x.npy"}, [4], ["x.npy", "(1000000000, 4)",
                                                                                  "file holds"]),
    "npz_member_lies": ("d.npz", npz_lying_member, {}, [4], ["d.npz", "array 'x'", "archive holds"]),
    "image_bomb": ("imgs", png_header_only(40000, 40000), {}, [1, 8, 8], ["bomb.png", "too large to decode"]),
    "image_half_bomb": ("imgs", png_header_only(12000, 12000), {}, [1, 8, 8], ["bomb.png", "too large to decode"]),
    "fifo_named_csv": ("t.csv", fifo, {"target": "y"}, [2], ["t.csv", "FIFO"]),
    "symlink_to_dev_zero": ("t.csv", dev_zero, {"target": "y"}, [2], ["t.csv", "character device"]),
    "duplicate_header_100k_columns": ("t.csv", duplicate_columns, {"target": "y"}, [100_001], ["duplicate column", "'c7'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_data_file_is_a_located_error_with_exit_2(case, tmp_path, capsys):
    name, write, extra, shape, words = CASES[case]
    write(tmp_path / name)
    data = {"path": name, **extra} if "target_path" not in extra else {"path": name, **extra}
    layers = "[{type: flatten}, {type: dense, units: 2}]" if len(shape) > 1 else "[{type: dense, units: 2}]"
    spec = write_spec(tmp_path, f"model: {{input_shape: {shape}, layers: {layers}}}\ndata: {data}\n")
    with no_hang():
        r = run_cli(capsys, "validate", str(spec))
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err + r.out
    assert "spec.yaml:2" in r.err, r.err  # located at the data: block
    for w in words:
        assert w in r.err, f"{w!r} not in:\n{r.err}"


def test_an_npz_that_would_inflate_past_the_limit_is_refused_before_inflating(tmp_path, monkeypatch):
    """A small compressed archive of zeros: the sizes in its headers say no before a byte is inflated."""
    np.savez_compressed(tmp_path / "d.npz", x=np.zeros((4000, 1000)), y=np.zeros(4000, dtype=np.int64))
    assert (tmp_path / "d.npz").stat().st_size < 100_000  # 32 MB of data
    monkeypatch.setenv("LAYERFORGE_MAX_DATA_BYTES", "8M")
    tracemalloc.start()
    with pytest.raises(DataError) as e:
        load_data(make_spec({"path": "d.npz"}, [1000]), base_dir=tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "32,000,000 bytes" in e.value.message and "limit of 8,388,608 bytes" in e.value.message
    assert "LAYERFORGE_MAX_DATA_BYTES=1G" in e.value.hint
    assert peak < 4 << 20


def test_an_npy_past_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((100, 50)))
    np.save(tmp_path / "y.npy", np.zeros(100, dtype=np.int64))
    monkeypatch.setenv("LAYERFORGE_MAX_DATA_BYTES", "10000")
    with pytest.raises(DataError, match="40,000 bytes in memory, more than the limit of 10,000 bytes"):
        load_data(make_spec({"path": "x.npy", "target_path": "y.npy"}, [50]), base_dir=tmp_path)


def test_a_csv_past_the_limit_is_refused_before_parsing(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text(csv_text(2000))
    monkeypatch.setenv("LAYERFORGE_MAX_DATA_BYTES", "64K")
    with pytest.raises(DataError) as e:
        load_data(make_spec({"path": "t.csv", "target": "y"}, [2]), base_dir=tmp_path)
    assert "parsing takes about 32 bytes of memory per byte" in e.value.message
    assert "LAYERFORGE_MAX_DATA_BYTES" in e.value.hint


def test_a_gzip_bomb_is_read_only_up_to_the_limit(tmp_path, monkeypatch):
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"a,b,y\n" + b"1,2,0\n" * 5_000_000))  # 30 MB → 30 KB
    monkeypatch.setenv("LAYERFORGE_MAX_DATA_BYTES", "32M")
    tracemalloc.start()
    with pytest.raises(DataError, match=r"decompressed\) is more than 1,048,576 bytes"):
        load_data(make_spec({"path": "t.csv.gz", "target": "y"}, [2]), base_dir=tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20


def test_generated_data_past_the_limit_is_refused_before_generating(monkeypatch):
    monkeypatch.setenv("LAYERFORGE_MAX_DATA_BYTES", "1M")
    spec = make_spec({"dataset": "sine", "num_samples": 100_000, "seq_len": 50}, [50, 1],
                     [{"type": "lstm", "units": 2}, {"type": "dense", "units": 1}])
    with pytest.raises(DataError, match="100,000 generated sequences of 50 steps") as e:
        load_data(spec)
    assert "num_samples" in e.value.hint


def test_predict_refuses_a_fifo_input_without_blocking(tmp_path, capsys, tiny_run):
    os.mkfifo(tmp_path / "in.csv")
    with no_hang():
        r = run_cli(capsys, "predict", str(tiny_run), "--input", str(tmp_path / "in.csv"))
    assert r.code == 2 and "FIFO" in r.err and "Traceback" not in r.err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    import layerforge as lf

    tmp = tmp_path_factory.mktemp("tinyrun")
    (tmp / "train.csv").write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{['=2+3', '@SUM(A1)', 'ok'][i % 3]}\n"
                                                          for i in range(60)))
    (tmp / "spec.yaml").write_text("model: {input_shape: [2], layers: [{type: dense, units: 3}]}\n"
                                   "data: {path: train.csv, target: label}\n"
                                   "train: {epochs: 1, device: cpu, plots: false}\n")
    lf.train(tmp / "spec.yaml", out=tmp / "run")
    return tmp / "run"


def test_predict_output_into_a_missing_folder_is_a_clear_error(tmp_path, capsys, tiny_run):
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    r = run_cli(capsys, "predict", str(tiny_run), "--input", str(tmp_path / "in.csv"),
                "--output", str(tmp_path / "missing" / "p.csv"))
    assert r.code == 2 and "does not exist" in r.err and "mkdir -p" in r.err and "Traceback" not in r.err


def test_predict_output_that_cannot_be_written_is_a_clear_error_and_keeps_the_old_file(tmp_path, capsys, tiny_run,
                                                                                       monkeypatch):
    import layerforge.engine.predict as predict

    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    (tmp_path / "p.csv").write_text("earlier predictions\n")

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(predict, "_write", full)
    r = run_cli(capsys, "predict", str(tiny_run), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "p.csv"))
    assert r.code == 2 and "No space left on device" in r.err and "Traceback" not in r.err
    assert (tmp_path / "p.csv").read_text() == "earlier predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "p.csv"]


def test_predicted_class_names_that_look_like_formulas_are_escaped_in_csv(tmp_path, capsys, tiny_run):
    import csv

    (tmp_path / "in.csv").write_text("a,b\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(30)))
    r = run_cli(capsys, "predict", str(tiny_run), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "p.csv"))
    assert r.code == 0, r.err
    names = {row["predicted_name"] for row in csv.DictReader(open(tmp_path / "p.csv"))}
    assert names and names <= {"'=2+3", "'@SUM(A1)", "ok"}


@pytest.mark.parametrize("cell,written", [("=1+2", "'=1+2"), ("+cmd", "'+cmd"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"),
                                          ("\tx", "'\tx"), ("\rx", "'\rx"), ("-0.5", "-0.5"), ("-3", "-3"),
                                          ("+1e5", "+1e5"), ("cat", "cat"), ("a=b", "a=b")])
def test_csv_text_cells_follow_the_owasp_rule_and_leave_numbers_alone(cell, written):
    from layerforge.engine.predict import csv_text

    assert csv_text(cell) == written
