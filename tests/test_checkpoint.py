import pickle

import pytest
import torch

from agents.core import checkpoint as ckpt
from agents.core.checkpoint import Checkpointer, CheckpointError, load_checkpoint, restore_generator, save_atomic


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
