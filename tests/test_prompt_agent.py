"""The prompt agent (RLPrompt / PIN presets of one soft Q-learning agent) and its run.

The loss through ``update`` is checked against an independent float64 computation of RLPrompt's
v2_v3 (softmax, no filter) and PIN's Monte-Carlo v1 (sparsemax on the filtered set, sparsemax
computed here by sorting); a tiny ``train.py pin/fsc-sentiment`` run goes end to end with
``evaluate.py``; resume equals straight; save -> load -> act is identical; bad input stops with one line.
"""

import copy
import dataclasses
import json
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import evaluate
import train
from agents import get_preset
from agents.engine.config import ConfigError
from agents.engine.episodes import EPISODE_REPLAYS, make_episode_buffer
from agents.prompt import PRESETS, PromptAgent, PromptConfig, build
from agents.prompt.agent import episode_layout
from agents.prompt.evaluation import whole_word_fraction

VOCAB, HIDDEN, T, B = 40, 8, 3, 4


def tiny_lm(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=1, n_head=2, n_positions=16, bos_token_id=0)
    return GPT2LMHeadModel(config).eval()


def tiny_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    """Prompt episodes as the collector lays them out: rows 0..T-1 real, row T the state after the prompt."""
    g = torch.Generator().manual_seed(seed)
    reward = torch.zeros(B, T + 1)
    reward[:, T - 1] = torch.randn(B, generator=g) * 3
    actions = torch.randint(0, VOCAB, (B, T + 1), generator=g)
    actions[:, T] = 0
    return {"obs": torch.randn(B, T + 1, HIDDEN, generator=g), "actions": actions, "reward": reward}


def make_agent(**changes) -> PromptAgent:
    config = PromptConfig(adapter_hidden=16, init_gain=1.0, init_bias=0.01, lr=1e-2, **changes)
    return PromptAgent(config, tiny_lm(), bos_id=0, seed=3)


def manual_q(agent: PromptAgent, adapter, hidden: torch.Tensor) -> torch.Tensor:
    """E relu(W1 h + b1) W2 + b2, written out in float64 from the adapter's own tensors."""
    w1, b1 = adapter[0].weight.double(), adapter[0].bias.double()
    w2, b2 = adapter[2].weight.double(), adapter[2].bias.double()
    feature = torch.relu(hidden.double() @ w1.T + b1) @ w2.T + b2
    return feature @ agent.network.lm.get_input_embeddings().weight.double().T  # [..., V]


def sparsemax_by_sort(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sparsemax(z), spmax(z)) for one vector, from the definition (sort, support, threshold)."""
    zs, _ = torch.sort(z, descending=True)
    k = torch.arange(1, len(z) + 1, dtype=z.dtype)
    support = int((1 + k * zs > torch.cumsum(zs, 0)).sum())
    tau = (zs[:support].sum() - 1) / support
    p = torch.clamp(z - tau, min=0)
    return p, 0.5 * (zs[:support] ** 2 - tau**2).sum() + 0.5


def test_softmax_without_filter_is_rlprompt_v2_v3_through_update():
    agent = make_agent(regularizer="softmax", loss="v2_v3", polyak=0.5)
    online = copy.deepcopy(agent.network.adapter)
    target = copy.deepcopy(agent.network.target_adapter)
    batch = tiny_batch()
    metrics = agent.update(batch, step=0)
    # the Polyak step comes first: target = 0.5 target + 0.5 online (equal at init: both the online values)
    for p_t, p_o in zip(target.parameters(), online.parameters()):
        p_t.data = 0.5 * p_t.data + 0.5 * p_o.data
    hidden, tokens, r = batch["obs"][:, :T], batch["actions"][:, :T], batch["reward"].sum(1).double()
    q, qbar = manual_q(agent, online, hidden), manual_q(agent, target, hidden)
    expected = 0.0
    for b in range(B):
        v = [torch.logsumexp(q[b, t], 0) for t in range(T)]
        vbar = [float(torch.logsumexp(qbar[b, t], 0)) for t in range(T)]
        adv = [q[b, t, tokens[b, t]] - v[t] for t in range(T)]
        for t in range(T):
            target_adv = (vbar[t + 1] if t < T - 1 else r[b]) - vbar[t]  # single-step PCL
            rest = sum(adv[t:])  # multi-step PCL: sum of A to the end against r - Vbar_t
            expected += 0.5 * ((adv[t] - target_adv) ** 2 + (rest - (r[b] - vbar[t])) ** 2)
    expected = float(expected.detach()) / B
    assert math.isclose(float(metrics["loss/sql"]), expected, rel_tol=1e-4)
    # and the step is Adam on exactly that loss: replay it by hand on a copy
    params = list(online.parameters())
    loss = 0
    qm = manual_q(agent, online, hidden)
    for b in range(B):
        v = [torch.logsumexp(qm[b, t], 0) for t in range(T)]
        vbar = [float(torch.logsumexp(qbar[b, t], 0)) for t in range(T)]
        adv = [qm[b, t, tokens[b, t]] - v[t] for t in range(T)]
        for t in range(T):
            target_adv = (vbar[t + 1] if t < T - 1 else r[b]) - vbar[t]
            loss = loss + 0.5 * ((adv[t] - target_adv) ** 2 + (sum(adv[t:]) - (r[b] - vbar[t])) ** 2)
    (loss / B).backward()
    torch.nn.utils.clip_grad_norm_(params, agent.config.grad_clip)
    torch.optim.Adam(params, lr=agent.config.lr).step()
    for mine, theirs in zip(params, agent.network.adapter.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    for mine, theirs in zip(target.parameters(), agent.network.target_adapter.parameters()):
        torch.testing.assert_close(mine, theirs)


def test_pin_v1_mc_with_filter_regresses_q_on_the_reward_and_reports_the_sparse_support():
    agent = make_agent(regularizer="sparsemax", loss="v1_mc", filter_top_k=7)
    online = copy.deepcopy(agent.network.adapter)
    batch = tiny_batch(seed=5)
    metrics = agent.update(batch, step=0)
    hidden, tokens, r = batch["obs"][:, :T], batch["actions"][:, :T], batch["reward"].sum(1).double()
    q = manual_q(agent, online, hidden)
    # Monte-Carlo regression, gamma 1: every Q_t onto r
    expected = float(((q.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - r[:, None]) ** 2).sum(1).mean().detach())
    assert math.isclose(float(metrics["loss/sql"]), expected, rel_tol=1e-4)
    # support: sparsemax over the LM's own top-7 tokens only
    prior = hidden.double() @ agent.network.lm.get_output_embeddings().weight.double().T
    sizes = []
    for b in range(B):
        for t in range(T):
            keep = torch.topk(prior[b, t], 7).indices
            p, _ = sparsemax_by_sort(q[b, t, keep])
            sizes.append(int((p > 0).sum()))
    assert all(1 <= s <= 7 for s in sizes)
    assert math.isclose(float(metrics["train/support_size"]), sum(sizes) / len(sizes), rel_tol=1e-6)


def test_filtered_agent_acts_only_within_the_lm_top_k():
    agent = make_agent(regularizer="sparsemax", filter_top_k=3)
    obs = torch.randn(64, HIDDEN)
    tokens, _ = agent.act(obs, step=0, explore=True)
    allowed = torch.topk(obs @ agent.network.lm.get_output_embeddings().weight.T, 3).indices
    assert bool((allowed == tokens[:, None]).any(1).all())


def test_filter_perplexity_and_lm_ranks_read_the_same_lm_context():
    """Acting's filter, the reported perplexity and ranks all read the LM at BOS + a_<t, first token included.

    Each prefix is run on its own here (no cache, no attention mask, no teacher forcing): a shifted
    position, a dropped first token or a filter computed from another context fails.
    """
    k = 3
    agent = make_agent(regularizer="sparsemax", filter_top_k=k)
    tokens = agent.write_prompts(8, T, explore=True, generator=torch.Generator().manual_seed(0))["tokens"]
    log_probs, ranks = [], []
    for t in range(T):
        prefix = torch.cat([torch.zeros(8, 1, dtype=torch.long), tokens[:, :t]], 1)  # BOS (id 0), a_<t
        logits = agent.network.lm(input_ids=prefix).logits[:, -1].double()  # [8, V]
        chosen = logits.gather(-1, tokens[:, t : t + 1])
        ranks.append((logits > chosen).sum(-1))
        log_probs.append(logits.log_softmax(-1).gather(-1, tokens[:, t : t + 1]).squeeze(-1))
    ranks = torch.stack(ranks, 1)  # [8, T]
    assert int(ranks.max()) < k  # every token is inside the LM's own top k at the context it was chosen in
    assert torch.equal(agent.lm_ranks(tokens), ranks)
    expected = torch.exp(-torch.stack(log_probs, 1).mean(1))  # natural log, mean over all T tokens
    torch.testing.assert_close(agent.perplexity(tokens).double(), expected, rtol=1e-5, atol=0)


def test_save_load_act_identical():
    agent = make_agent(regularizer="sparsemax", loss="v2_v3", filter_top_k=10)
    agent.update(tiny_batch(), step=0)
    agent.act(torch.randn(5, HIDDEN), step=0)  # move the exploration generator
    clone = make_agent(regularizer="sparsemax", loss="v2_v3", filter_top_k=10)
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))
    obs = torch.randn(32, HIDDEN)
    for explore in (True, False):
        assert torch.equal(agent.act(obs, step=0, explore=explore)[0], clone.act(obs, step=0, explore=explore)[0])
    batch = tiny_batch(seed=9)
    assert torch.equal(agent.update(batch, step=1)["loss/sql"], clone.update(batch, step=1)["loss/sql"])
    assert agent.write_prompts(2, T)["tokens"].tolist() == clone.write_prompts(2, T)["tokens"].tolist()


def test_latest_buffer_returns_the_newest_episodes():
    config = get_preset("rlprompt/fsc-sentiment")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, buffer_episodes=6))

    class Env:
        episode_limit, device = 2, torch.device("cpu")
        obs_spec = type("Spec", (), {"shape": (2,)})()

    def make_buffer(config, env, fields):  # what the prompt family's session builds for train.replay
        return make_episode_buffer(config.train, fields, env, EPISODE_REPLAYS[config.train.replay])

    buffer = make_buffer(config, Env(), episode_layout(Env())["fields"])
    for i in range(3):  # three collections of 4 episodes in a ring of 6
        rows = {name: torch.zeros((4, *shape), dtype=dtype) for name, (shape, dtype) in buffer.fields.items()}
        rows["obs"] = torch.full((4, 3, 2), float(i))
        rows["obs"][:, 0, 0] = torch.arange(4.0)  # the episode's position in its collection
        buffer.extend(rows)
    batch = buffer.sample(6)
    assert "index" not in batch and batch["obs"][:, 1, 1].tolist() == [2.0] * 6
    assert batch["obs"][:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 0.0, 1.0]
    clone = make_buffer(config, Env(), episode_layout(Env())["fields"])
    clone.load_state_dict(buffer.state_dict())
    assert torch.equal(clone.sample(4)["obs"], buffer.sample(4)["obs"])


def test_whole_word_fraction():
    words = {"great", "film"}
    assert whole_word_fraction([" great", " film"], words) == 1.0
    assert whole_word_fraction([" gr", "eat", " film"], words) == pytest.approx(1 / 3)  # fragments do not count
    assert whole_word_fraction([" great", "film", " xq"], words) == 0.0  # " great" + "film" is one word "greatfilm"
    assert whole_word_fraction([" film", ":", ":"], words) == pytest.approx(1 / 3)  # punctuation ends a word


def test_presets_differ_in_the_switches_only():
    rl, pin = PRESETS["rlprompt/fsc-sentiment"], PRESETS["pin/fsc-sentiment"]
    nofilter = PRESETS["pin-nofilter/fsc-sentiment"]
    assert (rl.agent.regularizer, rl.agent.filter_top_k, rl.agent.sample_top_k) == ("softmax", None, 256)
    assert (pin.agent.regularizer, pin.agent.filter_top_k, pin.agent.sample_top_k) == ("sparsemax", 815, None)
    assert nofilter.agent == dataclasses.replace(pin.agent, filter_top_k=None)
    assert (rl.train.replay, pin.train.replay) == ("latest", "uniform")


# ---------------------------------------------------------------------------------- runs (shipped tiny models)

TINY = [
    "env.num_envs=4",
    "total_steps=40",
    "eval_every=20",
    "log_every=20",
    "checkpoint_every=20",
    "train.batch_episodes=4",
    "update_after_episodes=4",
    "agent.adapter_hidden=16",
    "progress=false",
    "threads=1",
]


def test_train_and_evaluate_pin_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train.main(["pin/fsc-sentiment", "--run-dir", str(run_dir), *TINY]) == 0
    err = capsys.readouterr().err
    assert "best prompt so far" in err
    report = json.loads((run_dir / "prompt_report.json").read_text())
    for which in ("best", "final"):
        assert len(report[which]["tokens"]) == 5
        assert 0 <= report[which]["test_accuracy"] <= 1 and report[which]["perplexity"] > 1
        assert 1 <= report[which]["support_size"] <= 815
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*metrics)
    assert {"loss/sql", "train/support_size", "eval/dev_accuracy", "rollout/raw_reward"} <= keys
    assert evaluate.main([str(run_dir), "--episodes", "2", "--prompt"]) == 0
    out = capsys.readouterr().out
    (result,) = (run_dir / "eval").glob("eval_step*.json")
    data = json.loads(result.read_text())
    # the nominal score is the greedy prompt's test accuracy in percent (the same prompt every episode)
    assert data["nominal"]["mean_reward"] == pytest.approx(100 * data["prompt"]["greedy"]["test_accuracy"], abs=1e-3)
    assert data["prompt"]["greedy"]["prompt"] in out


def test_resume_equals_straight(tmp_path):
    from agents import run_training as run_train
    from agents.engine.checkpoint import Checkpointer, load_checkpoint
    from agents.engine.config import apply_overrides

    config = apply_overrides(get_preset("rlprompt/fsc-sentiment"), TINY)
    run_train(config, tmp_path / "straight")
    half = dataclasses.replace(config, train=dataclasses.replace(config.train, total_steps=20))
    run_train(half, tmp_path / "resumed")
    run_train(config, tmp_path / "resumed", resume=True)
    a = load_checkpoint(Checkpointer(tmp_path / "straight").latest())["agent"]
    b = load_checkpoint(Checkpointer(tmp_path / "resumed").latest())["agent"]
    for key in a["network"]:
        assert torch.equal(a["network"][key], b["network"][key]), key
    assert torch.equal(a["generator"], b["generator"]) and a["best"] == b["best"]


def one_line_error(capsys, argv) -> str:
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_bad_input_stops_with_one_line(tmp_path, capsys):
    base = ["pin/fsc-sentiment", *TINY]
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "a"), "agent.policy_lm=/no/such/model"])
    assert "does not exist" in line
    bert = tmp_path / "bert"
    from transformers import BertConfig, BertForMaskedLM

    BertForMaskedLM(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=8)).save_pretrained(bert)  # fmt: skip
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "b"), f"agent.policy_lm={bert}"])
    assert "not a causal LM" in line
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "c"), "env.options.prompt_length=0"])
    assert "prompt_length" in line
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "d"), "agent.filter_top_k=5000"])
    assert "filter_top_k=5000" in line and "4096" in line
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.tsv").write_text("text\tlabel\nthe film was great.\t1\n")
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "e"), f"env.options.dataset={data}"])
    assert "header" in line


def test_build_refuses_a_sample_top_k_above_the_vocabulary():
    config = get_preset("rlprompt/fsc-sentiment")
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, sample_top_k=10**6))
    with pytest.raises(ConfigError, match="sample_top_k"):
        build(config)
