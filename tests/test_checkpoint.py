import pickle

import pytest
import torch

from agents.engine import checkpoint as ckpt
from agents.engine.checkpoint import Checkpointer, CheckpointError, load_checkpoint, restore_generator, save_atomic


def test_save_load_and_retention(tmp_path):
    saver = Checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30):
        saver.save(step, {"value": torch.tensor([step])})
    assert [p.name for p in saver.existing()] == ["step_000000020.pt", "step_000000030.pt"]
    data = load_checkpoint(saver.latest())
    assert data["step"] == 30 and data["value"].item() == 30


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_atomic({"format": ckpt.FORMAT, "x": 1}, path)

    def dying_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt  # stands in for a kill during the write

    monkeypatch.setattr(ckpt.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"format": ckpt.FORMAT, "x": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["x"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_truncated_checkpoint_names_file(tmp_path):
    path = tmp_path / "step_000000001.pt"
    save_atomic({"format": ckpt.FORMAT, "w": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_foreign_pickle_is_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a regula checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_restore_generator_continues_a_stream_and_skips_another_devices_state():
    saved = torch.Generator().manual_seed(1)
    torch.rand(3, generator=saved)
    state = saved.get_state()
    expected = torch.rand(4, generator=saved)

    same = torch.Generator().manual_seed(99)
    assert restore_generator(same, state)
    assert torch.equal(torch.rand(4, generator=same), expected)

    # a CUDA generator's state is 16 bytes (Philox seed and offset): a CPU generator keeps its seeded start
    cuda_like_state = torch.zeros(16, dtype=torch.uint8)
    seeded = torch.Generator().manual_seed(7)
    assert not restore_generator(seeded, cuda_like_state)
    assert torch.equal(torch.rand(4, generator=seeded), torch.rand(4, generator=torch.Generator().manual_seed(7)))


# ---- checksums ------------------------------------------------------------------------------------


def _overwrite_middle(path, data=b"\x00garbage\x00" * 8):
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + len(data)] = data
    path.write_bytes(bytes(raw))


def _two_checkpoints(tmp_path):
    saver = Checkpointer(tmp_path, keep=3)
    for step in (10, 20):
        saver.save(step, {"w": torch.full((20_000,), float(step))})
    return saver


def test_each_checkpoint_has_a_sha256_sidecar_removed_with_it(tmp_path):
    import hashlib

    saver = Checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30):
        saver.save(step, {"value": torch.tensor([step])})
    names = sorted(p.name for p in saver.dir.iterdir())
    assert names == ["step_000000020.pt", "step_000000020.pt.sha256", "step_000000030.pt", "step_000000030.pt.sha256"]
    latest = saver.latest()
    digest = hashlib.sha256(latest.read_bytes()).hexdigest()
    assert ckpt.checksum_path(latest).read_text() == f"{digest}  {latest.name}\n"  # sha256sum -c reads it


def test_overwritten_bytes_are_caught_and_the_older_checkpoint_is_used(tmp_path, capsys):
    saver = _two_checkpoints(tmp_path)
    newest = saver.latest()
    _overwrite_middle(newest)
    path, data = saver.latest_valid()
    assert path.name == "step_000000010.pt" and data["step"] == 10 and data["w"][0].item() == 10.0
    warning = capsys.readouterr().err.strip()
    assert warning.startswith("warning:") and "\n" not in warning
    assert str(newest) in warning and "checksum mismatch" in warning


def test_without_the_checksum_torch_would_load_the_overwritten_file(tmp_path):
    """Why checksums: torch.load reads a file whose tensor bytes were overwritten without complaint."""
    saver = _two_checkpoints(tmp_path)
    newest = saver.latest()
    _overwrite_middle(newest)
    data = torch.load(newest, weights_only=True)
    assert not torch.equal(data["w"], torch.full((20_000,), 20.0))


def test_a_chosen_corrupted_checkpoint_is_an_error_not_a_fallback(tmp_path):
    saver = _two_checkpoints(tmp_path)
    chosen = saver.latest()
    _overwrite_middle(chosen)
    with pytest.raises(CheckpointError) as error:
        saver.load(chosen)
    assert str(error.value).startswith(str(chosen)) and "checksum mismatch" in str(error.value)
    assert "\n" not in str(error.value)
    path, data = saver.load()  # not chosen: the newest good one
    assert data["step"] == 10


def test_no_usable_checkpoint_names_the_directory(tmp_path, capsys):
    saver = _two_checkpoints(tmp_path)
    for path in saver.existing():
        _overwrite_middle(path)
    with pytest.raises(CheckpointError, match="none of its 2 checkpoint"):
        saver.load()
    assert capsys.readouterr().err.count("warning:") == 2
    with pytest.raises(CheckpointError, match="no checkpoint in this run directory"):
        Checkpointer(tmp_path / "empty").load()


def test_a_checkpoint_from_before_checksums_loads_unverified(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ckpt, "_UNVERIFIED_NOTED", False)
    old = tmp_path / "checkpoints" / "step_000000010.pt"
    save_atomic({"format": ckpt.FORMAT, "step": 10, "x": 1}, old)  # what main wrote: no sidecar
    path, data = Checkpointer(tmp_path).load()
    assert path == old and data["x"] == 1
    note = capsys.readouterr().err
    assert note.startswith("note:") and "unverified" in note
    load_checkpoint(old)
    assert capsys.readouterr().err == ""  # noted once


def test_an_unreadable_checksum_file_is_an_error(tmp_path):
    saver = _two_checkpoints(tmp_path)
    ckpt.checksum_path(saver.latest()).write_text("not a checksum")
    with pytest.raises(CheckpointError, match="checksum file .* is unreadable"):
        load_checkpoint(saver.latest())


def test_resume_target_takes_a_run_directory_or_one_of_its_checkpoints(tmp_path):
    saver = _two_checkpoints(tmp_path / "run")
    assert ckpt.resume_target(tmp_path / "run") == (tmp_path / "run", None)
    assert ckpt.resume_target(tmp_path / "runs" / "lr1.5") == (tmp_path / "runs" / "lr1.5", None)  # a dot, no file
    chosen = saver.existing()[0]
    assert ckpt.resume_target(chosen) == (tmp_path / "run", chosen)
    with pytest.raises(CheckpointError, match="RUN_DIR/checkpoints"):
        ckpt.resume_target(tmp_path / "elsewhere.pt")


def test_load_errors_say_why_in_our_words_and_never_suggest_weights_only_false(tmp_path):
    path = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": ckpt.FORMAT, "evil": Evil()}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a readable checkpoint (") and message.endswith(")")
    assert "weights_only" not in message and "\n" not in message and "other than plain data" in message
