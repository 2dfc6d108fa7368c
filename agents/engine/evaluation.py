"""Policy evaluation: run whole episodes on a VecEnv and report returns.

Each of the E envs plays a fixed quota of the requested episodes (``episodes // E``, plus one for the
first ``episodes % E``), so short episodes are not over-represented, a bias of "first N finished".
:func:`q_estimation_bias` compares a critic's estimates with Monte-Carlo returns (REDQ-style, as ERC\nreports it).
"""

from __future__ import annotations

import math

import torch

from envs.base import VecEnv


@torch.no_grad()
def run_episodes(
    agent,
    env: VecEnv,
    episodes: int,
    *,
    explore: bool = False,
    step: int = 0,
    seed: int | None = None,
    max_steps: int = 1_000_000,
    gamma: float | None = None,
) -> dict[str, torch.Tensor]:
    """Play ``episodes`` episodes; return ``{"returns": [episodes], "lengths": [episodes]}`` (CPU).

    Given ``gamma``, also ``"discounted_returns"`` [episodes], sum_t gamma^t r_t: the quantity a
    learner (or an adversary minimizing it) optimizes, which can rank policies differently from the
    undiscounted return (an adversary that holds a hopper still lowers the first, raises the second).

    For feed-forward agents: a recurrent state would carry across episode ends here (the
    multi-agent families evaluate with their own episode collector).
    """
    num = env.num_envs
    device = env.device
    quota = torch.full((num,), episodes // num, dtype=torch.int64, device=device)
    quota[: episodes % num] += 1
    done_count = torch.zeros(num, dtype=torch.int64, device=device)
    running_return = torch.zeros(num, device=device)
    running_length = torch.zeros(num, dtype=torch.int64, device=device)
    running_discounted = torch.zeros(num, device=device)
    discount = torch.ones(num, device=device)  # gamma^t of each env's current episode
    returns, lengths, discounted = [], [], []
    obs = env.reset(seed=seed)
    state = agent.initial_state(num)
    for _ in range(max_steps):
        if bool((done_count >= quota).all()):
            break
        action, state = agent.act(obs, state, step=step, explore=explore)
        out = env.step(action)
        reward = out.reward if out.reward.dim() == 1 else out.reward.sum(-1)
        running_return += reward
        running_length += 1
        done = out.terminated | out.truncated
        counted = done & (done_count < quota)
        returns.append(running_return[counted].cpu())
        lengths.append(running_length[counted].cpu())
        if gamma is not None:
            running_discounted += discount * reward
            discounted.append(running_discounted[counted].cpu())
            running_discounted = running_discounted * ~done
            discount = torch.where(done, 1.0, discount * gamma)
        done_count += counted
        running_return = running_return * ~done
        running_length = running_length * ~done
        obs = out.obs
    result = {"returns": torch.cat(returns)[:episodes], "lengths": torch.cat(lengths)[:episodes]}
    if gamma is not None:
        result["discounted_returns"] = torch.cat(discounted)[:episodes]
    return result


def summarize(
    returns: torch.Tensor, lengths: torch.Tensor | None = None, discounted: torch.Tensor | None = None
) -> dict[str, float]:
    """The suite's one evaluation schema (single- and multi-agent): mean, std (population), min and
    max of episode returns, the episode count, given ``lengths`` the mean episode length and, given
    ``discounted`` (per-episode discounted returns), their mean and std."""
    r = returns.to(torch.float64)
    out = {
        "mean_reward": float(r.mean()),
        "std_reward": float(r.std(unbiased=False)) if r.numel() > 1 else 0.0,
        "min_reward": float(r.min()),
        "max_reward": float(r.max()),
        "episodes": int(r.numel()),
    }
    if lengths is not None:
        out["mean_ep_length"] = float(lengths.to(torch.float64).mean())
    if discounted is not None:
        d = discounted.to(torch.float64)
        out["mean_discounted_reward"] = float(d.mean())
        out["std_discounted_reward"] = float(d.std(unbiased=False)) if d.numel() > 1 else 0.0
    return out


@torch.no_grad()
def q_estimation_bias(policy, env: VecEnv, *, gamma: float, seed: int | None = None, max_steps: int = 1000):
    """REDQ-style normalized Q-estimation bias against Monte-Carlo (soft) returns.

    ``policy(obs [E, ...]) -> (action [E, ...], q [E], bonus [E])``: the action to take, the critic's
    Q(s, a) for it and the entropy bonus the return credits to that step (SAC: -alpha log pi(a|s);
    zeros for a plain return). Each of the E envs plays one episode (at most ``max_steps`` steps):

        G_t = r_t + gamma (bonus_{t+1} + G_{t+1})     (cut at the episode's end)

    A pair counts when its episode terminated (G_t is exact) or at least H steps follow it, with
    gamma^H <= 0.01 (H = 459 at gamma 0.99), so the missing tail moves G_t by under 1 % of its scale.
    Returns floats: ``q_bias`` = mean over pairs of (Q - G) / |mean G|, ``q_bias_std`` (std of the
    same), ``mc_return`` = mean G, ``q_estimate`` = mean Q; NaN when no pair counts.
    The rollout draws from a forked global RNG (seeded with ``seed``), so training's stream is untouched.
    """
    devices = [env.device] if env.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        return _q_estimation_bias(policy, env, gamma, seed, max_steps)


def _q_estimation_bias(policy, env: VecEnv, gamma: float, seed: int | None, max_steps: int) -> dict[str, float]:
    num = env.num_envs
    obs = env.reset(seed=seed)
    alive = torch.ones(num, dtype=torch.bool, device=env.device)  # still in its first episode
    qs, rewards, bonuses, ends, valid_rows, terminated_any = [], [], [], [], [], torch.zeros_like(alive)
    for _ in range(max_steps):
        action, q, bonus = policy(obs)
        out = env.step(action)
        done = out.terminated | out.truncated
        qs.append(q)
        rewards.append(out.reward)
        bonuses.append(bonus)
        ends.append(done)
        valid_rows.append(alive.clone())
        terminated_any |= alive & out.terminated
        alive &= ~done
        obs = out.obs
        if not bool(alive.any()):
            break
    q, reward, bonus = torch.stack(qs), torch.stack(rewards), torch.stack(bonuses)  # [T, E]
    end, in_episode = torch.stack(ends), torch.stack(valid_rows)  # [T, E]
    returns = torch.zeros_like(reward)
    following = torch.zeros(num, device=env.device)  # bonus_{t+1} + G_{t+1}
    for t in reversed(range(reward.shape[0])):
        returns[t] = reward[t] + gamma * (~end[t]) * following
        following = bonus[t] + returns[t]
    length = in_episode.sum(0)  # [E] steps of the first episode
    horizon = math.ceil(math.log(0.01) / math.log(gamma)) if 0 < gamma < 1 else 0
    steps_left = length - torch.arange(reward.shape[0], device=env.device).unsqueeze(1) - 1  # [T, E]
    counted = in_episode & (terminated_any | (steps_left >= horizon))
    q, returns = q[counted].double(), returns[counted].double()
    if q.numel() == 0:
        return {"q_bias": math.nan, "q_bias_std": math.nan, "mc_return": math.nan, "q_estimate": math.nan}
    bias = (q - returns) / returns.mean().abs().clamp(min=1e-8)
    return {
        "q_bias": float(bias.mean()),
        "q_bias_std": float(bias.std(unbiased=False)),
        "mc_return": float(returns.mean()),
        "q_estimate": float(q.mean()),
    }


def evaluation_discount(family, agent) -> float | None:
    """The discount to report discounted returns with: the agent's ``gamma`` for single-agent runs of
    ``family`` (a :class:`agents.engine.family.Family`), None for multi-agent ones (every multi-agent
    summary keeps one schema, whichever loop plays it) and for families that play their own episodes."""
    if family.multi_agent or family.play_episodes is not None:
        return None
    return agent.config.gamma


def episode_returns(
    family,
    config,
    agent,
    episodes: int,
    *,
    seed: int,
    explore: bool = False,
    step: int = 0,
    num_envs: int | None = None,
    wrappers=(),
    gamma: float | None = None,
) -> dict[str, torch.Tensor]:
    """``{"returns", "lengths"}`` of ``agent`` on fresh envs of ``config`` (plus ``wrappers``), and
    ``"discounted_returns"`` given ``gamma`` (single-agent runs only).

    Env ``i`` of ``num_envs`` (default ``min(10, episodes)``) starts from ``reset(seed + i)``. A
    ``family`` with its own ``play_episodes`` (the multi-agent learners: masks and recurrent state;
    prompts) runs its own episodes; every other agent plays :func:`run_episodes`.
    """
    from envs import EnvError, make_vec_env

    if family.play_episodes is not None:
        if wrappers:
            raise EnvError(f"{config.algo} runs its own evaluation episodes; env wrappers are not supported for it yet")
        if gamma is not None:
            raise EnvError(f"{config.algo} runs its own evaluation episodes; discounted returns are not supported yet")
        return family.play_episodes(config, agent, episodes, seed, explore=explore)
    env = make_vec_env(
        config.env.id,
        num_envs or min(10, episodes),
        device=agent.device,
        seed=seed,
        options=config.env.options,
        wrappers=[*config.env.wrappers, *wrappers],
    )
    try:
        return run_episodes(agent, env, episodes, explore=explore, step=step, seed=seed, gamma=gamma)
    finally:
        env.close()
