"""Early learning dynamics of one preset at several learning rates, in process (no train.py): why the
``*/tweets-smollm`` presets use the papers' lr 5e-5.

Runs ``STEPS`` training steps of the preset's agent on its env for each learning rate (RLPrompt's
on-policy update on the 16 prompts just written; PIN's uniform replay of every prompt so far) and
prints per step the mean Q of the taken tokens, the value, the support size, the gradient norm before
clipping, the number of distinct prompts among the 16 written, and their raw reward / accuracy.

    nice -n 5 python benchmarks/prompt_lm_lr_probe.py rlprompt/tweets-smollm 1e-3,5e-5 12
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from agents.engine.config import apply_overrides  # noqa: E402
from agents.prompt.agent import build, make_envs  # noqa: E402
from agents.prompt.presets import PRESETS  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    preset, lrs, steps = sys.argv[1], [float(x) for x in sys.argv[2].split(",")], int(sys.argv[3])
    base = PRESETS[preset]
    env, _ = make_envs(base, "cpu")
    for lr in lrs:
        cfg = apply_overrides(base, [f"agent.lr={lr}"])
        agent = build(cfg, device="cpu", lm=env.policy_lm)
        stored: list[dict] = []
        t0 = time.perf_counter()
        for step in range(steps):
            obs, states, tokens = env.reset(), [], []
            for _ in range(env.prompt_length):
                action, _ = agent.act(obs)
                states.append(obs)
                tokens.append(action)
                out = env.step(action)
                obs = out.obs
            reward = torch.zeros(env.num_envs, env.prompt_length + 1)
            reward[:, env.prompt_length - 1] = out.reward
            batch = {
                "obs": torch.stack([*states, out.final_obs], 1),
                "actions": torch.stack([*tokens, tokens[-1]], 1),
                "reward": reward,
            }
            if cfg.train.replay == "uniform":
                stored.append(batch)
                if len(stored) * env.num_envs < cfg.train.batch_episodes:
                    continue
                index = torch.randint(0, len(stored) * env.num_envs, (cfg.train.batch_episodes,))
                batch = {k: torch.cat([b[k] for b in stored])[index] for k in batch}
            m = agent.update(batch, step=step)
            distinct = len({tuple(x) for x in out.info["prompt_tokens"].tolist()})
            print(
                f"lr {lr} step {step}: q_taken {float(m['train/q_taken']):.2f} value {float(m['train/value']):.2f} "
                f"support {float(m['train/support_size']):.0f} grad {float(m['train/grad_norm']):.2e} "
                f"distinct prompts {distinct} raw {float(out.info['raw_reward'].mean()):.1f} "
                f"acc {float(out.info['accuracy'].mean()):.2f}",
                flush=True,
            )
        print(f"lr {lr}: {(time.perf_counter() - t0) / steps:.1f} s per step", flush=True)


if __name__ == "__main__":
    main()
