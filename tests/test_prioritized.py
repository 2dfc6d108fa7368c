import io

import pytest
import torch
from scipy.stats import chisquare

from agents.engine.buffers import TransitionBuffer
from agents.engine.episodes import EpisodeBuffer
from agents.engine.prioritized import SERIAL_QUERIES, PrioritizedConfig, PrioritizedSampler, SumTree, searchsorted
from agents.engine.schedules import Linear

FIELDS = {"obs": ((2,), torch.float32), "action": ((), torch.int64), "done": ((), torch.bool)}


def rows(start: int, n: int) -> dict:
    idx = torch.arange(start, start + n)
    return {"obs": torch.stack([idx, -idx], 1).float(), "action": idx, "done": idx % 2 == 0}


def per_buffer(capacity: int, seed: int = 0, **kwargs) -> TransitionBuffer:
    return TransitionBuffer(FIELDS, capacity, seed=seed, sampler=PrioritizedSampler(capacity, **kwargs))


def counts(buf: TransitionBuffer, draws: int, batch_size: int = 1000) -> torch.Tensor:
    total = torch.zeros(buf.capacity, dtype=torch.int64)
    for _ in range(draws // batch_size):
        total += torch.bincount(buf.sample(batch_size)["index"], minlength=buf.capacity)
    return total


def td_for(priority: list[float], alpha: float, eps: float) -> torch.Tensor:
    """TD errors whose priority (|delta| + eps)^alpha is the given one."""
    return torch.tensor(priority, dtype=torch.float64) ** (1 / alpha) - eps


# -------------------------------------------------------------------------------------------------
# the uniform path


def test_uniform_path_unchanged_bit_for_bit():
    # recorded with the buffer as it was before samplers existed (same seed, same calls)
    buf = TransitionBuffer(FIELDS, 10, seed=7)
    buf.extend(rows(0, 6))
    assert buf.sample(8)["action"].tolist() == [3, 4, 1, 2, 1, 3, 5, 5]
    buf.extend(rows(6, 7))  # wraps: the index_copy_ path
    assert buf.sample(8)["action"].tolist() == [8, 11, 8, 11, 8, 7, 12, 10]
    other = TransitionBuffer(FIELDS, 10, seed=0)
    other.load_state_dict(buf.state_dict())
    assert other.sample(5)["action"].tolist() == [6, 12, 3, 8, 6]
    assert sorted(buf.state_dict()) == ["capacity", "cursor", "generator", "size", "storage"]
    assert sorted(buf.sample(3)) == ["action", "done", "obs"]  # no index / weights entries


# -------------------------------------------------------------------------------------------------
# sampling frequencies


def test_sampling_frequencies_match_priorities_chi_square():
    alpha, eps = 1.0, 1e-6
    priority = [1.0, 2.0, 3.0, 4.0, 0.5, 6.0, 2.5, 1.0]
    buf = per_buffer(8, seed=11, alpha=alpha, eps=eps)
    buf.extend(rows(0, 8))
    buf.update_priorities(torch.arange(8), td_for(priority, alpha, eps))
    observed = counts(buf, 100_000).numpy()
    p = torch.tensor(priority, dtype=torch.float64)
    expected = (p / p.sum() * observed.sum()).numpy()
    assert chisquare(observed, expected).pvalue > 0.001
    # the test has power: the same counts reject uniform sampling
    assert chisquare(observed, [observed.sum() / 8] * 8).pvalue < 1e-12


def test_update_changes_frequencies():
    alpha, eps = 1.0, 1e-6
    buf = per_buffer(4, seed=2, alpha=alpha, eps=eps)
    buf.extend(rows(0, 4))
    # all rows enter at priority 1: uniform
    before = counts(buf, 40_000).numpy()
    assert chisquare(before, [10_000] * 4).pvalue > 0.001
    buf.update_priorities(torch.tensor([2]), td_for([7.0], alpha, eps))  # row 2: 7 of 10 mass
    after = counts(buf, 40_000).numpy()
    assert chisquare(after, [4_000, 4_000, 28_000, 4_000]).pvalue > 0.001


def test_alpha_zero_is_uniform_with_unit_weights():
    buf = per_buffer(5, seed=0, alpha=0.0)
    buf.extend(rows(0, 5))
    buf.update_priorities(torch.arange(5), torch.tensor([0.0, 1.0, 10.0, 100.0, 1e4]))
    assert torch.equal(buf.sampler.tree.leaves, torch.ones(5, dtype=torch.float64))
    batch = buf.sample(50)
    assert torch.equal(batch["weights"], torch.ones(50))


def test_many_groups_frequencies_and_empty_rows_never_drawn():
    # 1000 rows in groups of 16 (63 groups), only 700 filled: the two-level search end to end
    sampler = PrioritizedSampler(1000, alpha=1.0, fanout=16)
    buf = TransitionBuffer(FIELDS, 1000, seed=5, sampler=sampler)
    buf.extend(rows(0, 700))
    generator = torch.Generator().manual_seed(0)
    priority = torch.rand(700, generator=generator, dtype=torch.float64) * 5 + 0.01
    buf.update_priorities(torch.arange(700), priority - 1e-6)
    observed = counts(buf, 200_000, batch_size=2000)
    assert observed[700:].sum() == 0
    # pool rows into 20 bins of 35 so every expected count is large
    observed_bins = observed[:700].view(20, 35).sum(1).numpy()
    expected_bins = (priority / priority.sum() * 200_000).view(20, 35).sum(1).numpy()
    assert chisquare(observed_bins, expected_bins).pvalue > 0.001


def test_find_by_hand_skips_zero_priority_leaves():
    tree = SumTree(6, fanout=2)  # groups {0,1} {2,3} {4,5}
    tree.set(torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([1.0, 0.0, 2.0, 0.0, 0.0, 3.0]))
    assert tree.total.item() == 6.0
    # cumulative mass: leaf 0 (0, 1], leaf 2 (1, 3], leaf 5 (3, 6]
    mass = torch.tensor([1e-9, 1.0, 1.0 + 1e-9, 2.0, 3.0, 3.0 + 1e-9, 6.0, 7.0], dtype=torch.float64)
    assert tree.find(mass).tolist() == [0, 0, 2, 2, 2, 5, 5, 5]


def test_chunked_searchsorted_equals_torch():
    generator = torch.Generator().manual_seed(0)
    flat = torch.rand(1000, generator=generator, dtype=torch.float64).cumsum(0)
    rows = torch.rand(500, 16, generator=generator, dtype=torch.float64).cumsum(1)
    query = torch.rand(500, generator=generator, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the chunked path (500 queries > SERIAL_QUERIES)
        assert query.shape[0] > SERIAL_QUERIES
        assert torch.equal(searchsorted(flat, query * flat[-1]), torch.searchsorted(flat, query * flat[-1]))
        batched = (query * rows[:, -1]).unsqueeze(1)
        assert torch.equal(searchsorted(rows, batched), torch.searchsorted(rows, batched))
    finally:
        torch.set_num_threads(threads)


def test_stratified_draws_one_per_segment():
    tree = SumTree(4, fanout=4)
    tree.set(torch.arange(4), torch.tensor([1.0, 1.0, 1.0, 1.0]))
    generator = torch.Generator().manual_seed(0)
    # four equal segments of equal leaves: each leaf exactly once, in order
    assert tree.stratified(4, generator).tolist() == [0, 1, 2, 3]


# -------------------------------------------------------------------------------------------------
# importance weights and beta


def test_importance_weights_by_hand_four_rows():
    alpha, eps, beta = 0.5, 0.5, 0.5
    buf = per_buffer(4, seed=3, alpha=alpha, eps=eps, beta=beta)
    buf.extend(rows(0, 4))
    # (|delta| + 0.5)^0.5 for delta = 3.5, 8.5, 15.5, 0.5 gives priorities 2, 3, 4, 1 exactly
    buf.update_priorities(torch.arange(4), torch.tensor([3.5, -8.5, 15.5, 0.5]))
    assert buf.sampler.tree.leaves.tolist() == [2.0, 3.0, 4.0, 1.0]
    batch = buf.sample(64)  # 64 segments of 10/64 each: every row is drawn
    assert set(batch["index"].tolist()) == {0, 1, 2, 3}
    n, probability = 4, [0.2, 0.3, 0.4, 0.1]
    raw = [(n * p) ** -beta for p in probability]  # (N P(i))^-beta
    expected = torch.tensor([w / max(raw) for w in raw])  # the batch holds row 3, the largest weight
    assert torch.allclose(batch["weights"], expected[batch["index"]], rtol=1e-6, atol=0)
    assert batch["weights"].dtype == torch.float32
    assert torch.equal(batch["action"], batch["index"])  # fields are the rows named by index


def test_weights_normalized_by_batch_max():
    alpha, eps = 1.0, 1e-6
    buf = per_buffer(2, seed=0, alpha=alpha, eps=eps, beta=1.0)
    buf.extend(rows(0, 2))
    buf.update_priorities(torch.arange(2), td_for([1.0, 3.0], alpha, eps))
    # a batch of one: its own weight is the batch max, so exactly 1 whichever row was drawn
    for _ in range(5):
        assert buf.sample(1)["weights"].tolist() == [1.0]


def test_beta_schedule_is_a_function_of_the_step():
    sampler = PrioritizedConfig(beta_start=0.4, beta_end=1.0, beta_steps=100).build(4)
    assert sampler.beta == Linear(0.4, 1.0, 100)
    assert [sampler.beta_at(t) for t in (0, 50, 100, 1000)] == pytest.approx([0.4, 0.7, 1.0, 1.0])
    buf = TransitionBuffer(FIELDS, 4, seed=1, sampler=sampler)
    buf.extend(rows(0, 4))
    alpha, eps = sampler.alpha, sampler.eps
    buf.update_priorities(torch.arange(4), td_for([1.0, 2.0, 4.0, 8.0], alpha, eps))
    for step, beta in ((0, 0.4), (50, 0.7), (100, 1.0)):
        batch = buf.sample(32, step=step)
        p = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)[batch["index"]]
        probability = p / 15.0
        raw = (4 * probability) ** -beta
        assert torch.allclose(batch["weights"].double(), raw / raw.max(), rtol=1e-5)


# -------------------------------------------------------------------------------------------------
# insertion, overwrite, updates


def test_new_rows_enter_at_the_running_max_priority():
    alpha, eps = 1.0, 1e-6
    buf = per_buffer(8, alpha=alpha, eps=eps)
    buf.extend(rows(0, 3))
    assert buf.sampler.tree.leaves[:3].tolist() == [1.0, 1.0, 1.0]  # nothing seen yet: priority 1
    buf.update_priorities(torch.arange(3), torch.tensor([2.0, 5.0, 0.5]))
    buf.extend(rows(3, 2))
    leaves = buf.sampler.tree.leaves
    assert torch.allclose(leaves[:5], torch.tensor([2.0, 5.0, 0.5, 5.0, 5.0], dtype=torch.float64) + eps)
    # the running max never decreases: after lowering every priority new rows still enter at 5
    buf.update_priorities(torch.arange(5), torch.zeros(5))
    buf.extend(rows(5, 1))
    assert leaves[5].item() == pytest.approx(5.0 + eps)
    assert leaves[6:].tolist() == [0.0, 0.0]  # never written, never drawn


def test_ring_overwrite_resets_the_overwritten_rows():
    alpha, eps = 1.0, 1e-6
    buf = per_buffer(4, alpha=alpha, eps=eps)
    buf.extend(rows(0, 4))
    buf.update_priorities(torch.arange(4), td_for([1.0, 2.0, 3.0, 4.0], alpha, eps))
    buf.extend(rows(4, 2))  # overwrites rows 0 and 1 with actions 4 and 5
    assert buf.storage["action"].tolist() == [4, 5, 2, 3]
    assert buf.sampler.tree.leaves.tolist() == pytest.approx([4.0, 4.0, 3.0, 4.0])
    assert buf.sampler.tree.total.item() == pytest.approx(15.0)
    batch = buf.sample(300)
    assert torch.equal(batch["action"], buf.storage["action"][batch["index"]])


def test_repeated_index_in_one_update_last_write_wins():
    alpha, eps = 1.0, 1e-6
    buf = per_buffer(4, alpha=alpha, eps=eps)
    buf.extend(rows(0, 4))
    index = torch.tensor([3, 1, 3, 2, 1, 3])
    td = torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0, 0.5])
    buf.update_priorities(index, td)
    assert buf.sampler.tree.leaves.tolist() == pytest.approx([1.0, 14.0 + eps, 13.0 + eps, 0.5 + eps])
    assert buf.sampler.tree.total.item() == pytest.approx(1.0 + 14 + 13 + 0.5 + 3 * eps)


def test_incremental_tree_equals_rebuilt_tree_bit_for_bit():
    generator = torch.Generator().manual_seed(1)
    tree = SumTree(100, fanout=8)
    for _ in range(20):
        index = torch.randint(0, 100, (16,), generator=generator)
        tree.set(index, torch.rand(16, generator=generator, dtype=torch.float64))
    rebuilt = SumTree(100, fanout=8)
    rebuilt.rebuild(tree.leaves.clone())
    for name in ("values", "cumulative", "totals", "top"):
        assert torch.equal(getattr(tree, name), getattr(rebuilt, name)), name
    # and the totals are the leaf sums
    assert torch.allclose(tree.totals, tree.values.sum(1))


# -------------------------------------------------------------------------------------------------
# checkpoints


def exercise(buf: TransitionBuffer, start: int, generator: torch.Generator) -> list[torch.Tensor]:
    out = []
    for k in range(4):
        batch = buf.sample(16, step=1000 * k)
        buf.update_priorities(batch["index"], torch.randn(16, generator=generator))
        buf.extend(rows(start + 3 * k, 3))
        out += [batch["index"], batch["weights"], batch["action"]]
    return out


def test_state_dict_round_trip_continues_bit_for_bit():
    make = lambda seed: TransitionBuffer(  # noqa: E731
        FIELDS, 10, seed=seed, sampler=PrioritizedConfig(beta_steps=4000).build(10)
    )
    a = make(4)
    a.extend(rows(0, 7))
    exercise(a, 100, torch.Generator().manual_seed(0))  # wraps the ring, priorities all differ
    file = io.BytesIO()
    torch.save(a.state_dict(), file)
    file.seek(0)
    b = make(99)
    b.load_state_dict(torch.load(file, weights_only=True))
    assert torch.equal(a.sampler.tree.cumulative, b.sampler.tree.cumulative)
    assert torch.equal(a.sampler.max_priority, b.sampler.max_priority)
    after_a = exercise(a, 200, torch.Generator().manual_seed(1))
    after_b = exercise(b, 200, torch.Generator().manual_seed(1))
    for x, y in zip(after_a, after_b):
        assert torch.equal(x, y)


def test_load_into_other_capacity_keeps_priorities_with_their_rows():
    alpha, eps = 1.0, 1e-6
    small = per_buffer(4, alpha=alpha, eps=eps)
    small.extend(rows(0, 3))
    small.extend(rows(3, 3))  # ring holds 4, 5, 2, 3 with cursor 2
    small.update_priorities(torch.arange(4), td_for([10.0, 20.0, 30.0, 40.0], alpha, eps))
    big = per_buffer(8, alpha=alpha, eps=eps)
    big.load_state_dict(small.state_dict())
    assert big.storage["action"][:4].tolist() == [2, 3, 4, 5]
    assert big.sampler.tree.leaves.tolist() == pytest.approx([30.0, 40.0, 10.0, 20.0, 0, 0, 0, 0])
    big.extend(rows(6, 1))
    assert big.sampler.tree.leaves[4].item() == pytest.approx(40.0)  # the running max came along


def test_uniform_checkpoint_into_prioritized_buffer_and_back():
    uniform = TransitionBuffer(FIELDS, 6, seed=0)
    uniform.extend(rows(0, 4))
    per = per_buffer(6)
    per.load_state_dict(uniform.state_dict())
    assert per.sampler.tree.leaves.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert per.state_dict()["sampler"]["priorities"].tolist() == [1.0, 1.0, 1.0, 1.0]  # filled rows only
    assert per.sample(8)["index"].max() < 4
    back = TransitionBuffer(FIELDS, 6, seed=0)
    back.load_state_dict(per.state_dict())  # the sampler's state is ignored by a uniform buffer
    assert len(back) == 4


# -------------------------------------------------------------------------------------------------
# episode buffers (one priority per episode) and errors


def test_episode_buffer_gets_episode_level_priorities():
    fields = {"obs": ((2, 3), torch.float32), "reward": ((), torch.float32), "filled": ((), torch.bool)}
    buf = EpisodeBuffer(fields, capacity=6, max_len=5, seed=0)
    episodes = {
        "obs": torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 5, 2, 3).clone(),
        "reward": torch.zeros(4, 5),
        "filled": torch.ones(4, 5, dtype=torch.bool),
    }
    buf.extend(episodes)
    buf.use_sampler(PrioritizedSampler(6, alpha=1.0))  # rows already stored enter at priority 1
    assert buf.sampler.tree.leaves.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    batch = buf.sample(8)
    assert batch["obs"].shape == (8, 5, 2, 3) and batch["index"].shape == (8,) and batch["weights"].shape == (8,)
    assert torch.equal(batch["obs"][:, 0, 0, 0].long(), batch["index"])
    # one TD error per episode (e.g. the mean |delta| over its filled steps)
    buf.update_priorities(torch.arange(4), torch.tensor([1.0, 1.0, 1.0, 97.0]) - 1e-6)
    observed = counts(buf, 20_000)[:4].numpy()
    assert chisquare(observed, [200, 200, 200, 19_400]).pvalue > 0.001


def test_errors():
    uniform = TransitionBuffer(FIELDS, 4)
    uniform.extend(rows(0, 2))
    with pytest.raises(RuntimeError, match="sampler"):
        uniform.update_priorities(torch.tensor([0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="capacity"):
        TransitionBuffer(FIELDS, 4, sampler=PrioritizedSampler(5))
    with pytest.raises(ValueError, match="clash"):
        TransitionBuffer({**FIELDS, "weights": ((), torch.float32)}, 4, sampler=PrioritizedSampler(4))
    with pytest.raises(RuntimeError, match="empty"):
        per_buffer(4).sample(2)
    with pytest.raises(ValueError, match="eps"):
        PrioritizedSampler(4, eps=0.0)
