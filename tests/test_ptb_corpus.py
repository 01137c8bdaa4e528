"""PTB corpus: the real files' vocabulary, checksum errors, and fetching (HTTP, archive, dir)."""

from __future__ import annotations

import http.server
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from evo_nas.cli.train import data as data_group
from ground_truths.ptb_corpus import (
    PTB_FILES,
    CorpusError,
    batchify,
    fetch_ptb,
    get_batch,
    load_corpus,
    ptb_dir,
    verify_ptb,
)

PTB = ptb_dir()  # $EVO_NAS_DATA/ptb: the tests read the shared copy


@pytest.fixture
def ptb_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in PTB_FILES:
        shutil.copyfile(PTB / name, folder / name)
    return folder


@pytest.fixture
def server() -> Iterator[tuple[str, Path]]:
    """A local HTTP server on an ephemeral port serving a folder (default: the shared PTB)."""
    root = {"dir": PTB}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root["dir"]), **kwargs)

        def log_message(self, *args):  # keep the test output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_real_ptb_has_exactly_10000_words() -> None:
    corpus = load_corpus(PTB)
    assert len(corpus.words) == 10_000
    assert len(set(corpus.words)) == 10_000
    assert "<eos>" in corpus.words and "<unk>" in corpus.words
    # token counts with <eos> from the data README
    assert [len(corpus.split(s)) for s in ("train", "valid", "test")] == [929_589, 73_760, 82_430]
    first_line = (PTB / "ptb.train.txt").read_text().split("\n", 1)[0].split()
    assert [corpus.words[int(i)] for i in corpus.train[: len(first_line) + 1]] == [
        *first_line,
        "<eos>",
    ]


def test_altered_truncated_and_missing_files_are_named(ptb_copy: Path) -> None:
    verify_ptb(ptb_copy)
    path = ptb_copy / "ptb.valid.txt"
    raw = bytearray(path.read_bytes())
    raw[1000] = ord("x") if raw[1000] != ord("x") else ord("y")  # same size, one byte changed
    path.write_bytes(bytes(raw))
    with pytest.raises(CorpusError, match=r"ptb\.valid\.txt: altered \(md5 [0-9a-f]{32}"):
        verify_ptb(ptb_copy)
    with pytest.raises(CorpusError, match=r"ptb\.valid\.txt: altered"):
        load_corpus(ptb_copy)
    path.write_bytes(bytes(raw[:5000]))
    with pytest.raises(CorpusError, match=r"ptb\.valid\.txt: truncated \(5,000 bytes"):
        verify_ptb(ptb_copy)
    (ptb_copy / "ptb.test.txt").unlink()
    shutil.copyfile(PTB / "ptb.valid.txt", path)
    with pytest.raises(CorpusError, match=r"ptb\.test\.txt: missing"):
        verify_ptb(ptb_copy)


def test_fetch_over_http_from_a_local_server(server, tmp_path: Path) -> None:
    url, _ = server
    dest = fetch_ptb(url + "/", tmp_path / "data" / "ptb")
    assert dest == tmp_path / "data" / "ptb"
    for name in PTB_FILES:
        assert (dest / name).read_bytes() == (PTB / name).read_bytes()
    verify_ptb(dest)
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".ptb-fetch-")]


def test_fetch_rejects_an_altered_download_and_installs_nothing(
    server, ptb_copy: Path, tmp_path: Path
) -> None:
    url, root = server
    path = ptb_copy / "ptb.train.txt"
    path.write_bytes(path.read_bytes().replace(b" the ", b" teh ", 1))
    root["dir"] = ptb_copy
    dest = tmp_path / "ptb"
    with pytest.raises(CorpusError, match=r"ptb\.train\.txt: altered"):
        fetch_ptb(url, dest)
    assert not dest.exists() or not any(dest.iterdir())
    with pytest.raises(CorpusError, match=r"/nothing/ptb\.train\.txt: download failed"):
        fetch_ptb(url + "/nothing/", dest)


@pytest.mark.parametrize("kind", ["zip", "tgz", "dir"])
def test_fetch_from_local_archive_or_folder(kind: str, tmp_path: Path) -> None:
    if kind == "dir":
        source = PTB
    elif kind == "zip":
        source = tmp_path / "simple-examples.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for name in PTB_FILES:
                zf.write(PTB / name, f"simple-examples/data/{name}")
    else:
        source = tmp_path / "simple-examples.tgz"
        with tarfile.open(source, "w:gz") as tf:
            for name in PTB_FILES:
                tf.add(PTB / name, f"./simple-examples/data/{name}")
    dest = fetch_ptb(str(source), tmp_path / "installed")
    verify_ptb(dest)


def test_fetch_from_an_archive_without_ptb_names_the_missing_file(tmp_path: Path) -> None:
    source = tmp_path / "other.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(CorpusError, match=r"ptb\.train\.txt: missing"):
        fetch_ptb(str(source), tmp_path / "ptb")
    with pytest.raises(CorpusError, match="not a zip or tar archive"):
        fetch_ptb(str(PTB / "ptb.valid.txt"), tmp_path / "ptb")


def test_data_fetch_command(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(data_group, ["fetch", "ptb", "--source", str(PTB), "--dest", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "installed and verified" in ok.output
    verify_ptb(tmp_path)
    bad = runner.invoke(data_group, ["fetch", "ptb", "--source", str(tmp_path / "none")])
    assert bad.exit_code == 2
    assert bad.output == f"error: {tmp_path / 'none'}: no such file or folder\n"


def _cut(source: Path, into: Path) -> Path:
    """A copy of the PTB folder ``source`` whose validation file is cut short."""
    shutil.copytree(source, into)
    valid = into / "ptb.valid.txt"
    valid.write_bytes(valid.read_bytes()[:1000])
    return into


@pytest.mark.parametrize("kind", ["dir", "tgz", "truncated-tgz"])
def test_a_failed_fetch_names_the_source_file_in_one_line(kind: str, tmp_path: Path) -> None:
    folder = _cut(PTB, tmp_path / "cut")
    if kind == "dir":
        source, named = folder, f"{folder / 'ptb.valid.txt'}: truncated (1,000 bytes"
    else:
        source = tmp_path / "ptb.tgz"
        with tarfile.open(source, "w:gz") as tf:
            for name in PTB_FILES:
                tf.add(folder / name, f"data/{name}")
        named = f"{source}: ptb.valid.txt: truncated (1,000 bytes"
        if kind == "truncated-tgz":
            source.write_bytes(source.read_bytes()[:300_000])
            named = f"{source}: damaged archive"
    dest = tmp_path / "installed"
    args = ["fetch", "ptb", "--source", str(source), "--dest", str(dest)]
    result = CliRunner().invoke(data_group, args)
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: {named}"), line
    assert "-fetch-" not in line  # never the deleted staging folder
    assert not dest.exists() or not any(dest.iterdir())


def test_environment_variable_sets_the_data_root(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVO_NAS_DATA", str(tmp_path))
    assert ptb_dir() == tmp_path / "ptb"
    assert ptb_dir(Path("/elsewhere")) == Path("/elsewhere")
    monkeypatch.delenv("EVO_NAS_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ptb_dir() == tmp_path / "cache" / "evo-nas" / "ptb"


def test_batchify_and_get_batch() -> None:
    data = torch.arange(103)
    b = batchify(data, 4)
    assert b.shape == (25, 4)
    assert b[:, 1].tolist() == list(range(25, 50))  # each column a contiguous stream
    x, y = get_batch(b, 20, 10)  # clipped at the end
    assert x.shape == (4, 4) and y.shape == (16,)
    assert torch.equal(y.view(4, 4), b[21:25])
