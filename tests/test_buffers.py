import pytest
import torch

from agents.engine.buffers import TransitionBuffer

FIELDS = {"obs": ((2,), torch.float32), "action": ((), torch.int64), "done": ((), torch.bool)}


def rows(start: int, n: int) -> dict:
    idx = torch.arange(start, start + n)
    return {"obs": torch.stack([idx, -idx], 1).float(), "action": idx, "done": idx % 2 == 0}


def test_extend_wraps_and_keeps_newest():
    buf = TransitionBuffer(FIELDS, capacity=5)
    buf.extend(rows(0, 3))
    buf.extend(rows(3, 4))  # wraps: positions 3, 4, 0, 1
    assert len(buf) == 5 and buf.cursor == 2
    assert buf.storage["action"].tolist() == [5, 6, 2, 3, 4]
    assert buf.storage["obs"][:, 1].tolist() == [-5, -6, -2, -3, -4]


def test_sample_is_reproducible_and_from_filled_rows():
    a, b = TransitionBuffer(FIELDS, 100, seed=3), TransitionBuffer(FIELDS, 100, seed=3)
    for buf in (a, b):
        buf.extend(rows(0, 10))
    sa, sb = a.sample(64), b.sample(64)
    assert torch.equal(sa["action"], sb["action"])
    assert int(sa["action"].max()) < 10
    assert torch.equal(sa["obs"][:, 0].long(), sa["action"])  # rows stay aligned across fields


def test_state_dict_round_trip_continues_sampling():
    a = TransitionBuffer(FIELDS, 8, seed=1)
    a.extend(rows(0, 6))
    a.sample(4)
    state = a.state_dict()
    b = TransitionBuffer(FIELDS, 8, seed=99)
    b.load_state_dict(state)
    assert torch.equal(a.sample(16)["action"], b.sample(16)["action"])
    a.extend(rows(6, 4))
    b.extend(rows(6, 4))
    assert torch.equal(a.storage["action"], b.storage["action"])


def test_missing_field_and_empty_sample_errors():
    buf = TransitionBuffer(FIELDS, 4)
    with pytest.raises(RuntimeError, match="empty"):
        buf.sample(1)
    with pytest.raises(KeyError, match="done"):
        buf.extend({"obs": torch.zeros(1, 2), "action": torch.zeros(1, dtype=torch.int64)})


def test_load_into_larger_capacity_keeps_chronological_order():
    small = TransitionBuffer(FIELDS, 4)
    small.extend(rows(0, 3))
    small.extend(rows(3, 3))  # ring holds 4, 5, 2, 3 with cursor 2
    big = TransitionBuffer(FIELDS, 10)
    big.load_state_dict(small.state_dict())
    assert big.storage["action"][:4].tolist() == [2, 3, 4, 5]
    assert len(big) == 4 and big.cursor == 4
    big.extend(rows(6, 1))
    assert big.storage["action"][4].item() == 6


def test_insert_larger_than_capacity_and_mismatched_shapes_are_refused():
    buf = TransitionBuffer(FIELDS, 4)
    with pytest.raises(ValueError, match="capacity 4"):
        buf.extend(rows(0, 5))
    other = TransitionBuffer({**FIELDS, "obs": ((3,), torch.float32)}, 4)
    buf.extend(rows(0, 2))
    with pytest.raises(ValueError, match="'obs' has shape"):
        other.load_state_dict(buf.state_dict())
