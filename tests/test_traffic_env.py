"""The SUMO traffic-signal env (``traffic:grid``): contract, a one-car scenario checked by hand, yellow and minimum
green read back from SUMO, equal trajectories on libsumo and TraCI, perturbation options and the malicious-lights
wrapper, errors (bad options, a SUMO error, a dead simulation), and no SUMO process outliving a SIGKILLed parent.

Skipped (one line) only where the ``traffic`` extra (the SUMO wheels) is not installed."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("libsumo") is None or importlib.util.find_spec("sumo") is None:
    pytest.skip("the traffic extra (SUMO wheels) is not installed: pip install -e .[traffic]", allow_module_level=True)

import torch
from marl_checks import TINY_AGENT_OVERRIDES

from agents.engine.config import apply_overrides
from agents.marl import PRESETS, train_config
from envs import EnvError, make_vec_env
from envs.multiagent import MultiAgentVecEnv, make_marl_env
from envs.traffic import make_traffic_env
from envs.traffic.network import VEHICLE_SPACE
from envs.traffic.perturb import MaliciousLights

ROOT = Path(__file__).resolve().parents[1]
# One light, one eastbound car (1 vehicle/hour on the west entry: it departs at t = 0), raw units.
ONE_CAR = {"rows": 1, "cols": 1, "inflows": [0, 0, 1, 0], "normalize": False}
NS_GREEN, NS_YELLOW, EW_GREEN = "GGGrrrGGGrrr", "yyyrrryyyrrr", "rrrGGGrrrGGG"
WEST = 3  # the west approach's slot among the incoming edges (north, east, south, west)


def keep(env):
    return torch.zeros(env.num_envs, env.n_agents, dtype=torch.int64)


def switch(env):
    return torch.ones(env.num_envs, env.n_agents, dtype=torch.int64)


def per_light(obs):
    """Raw observation rows -> (queue, wait, delay, count) [.., 4] each, axis, time since change."""
    return obs[..., 0:4], obs[..., 4:8], obs[..., 8:12], obs[..., 12:16], obs[..., 16], obs[..., 17]


def alive(pid):
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_gone(pids, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def grid():
    """The authors' 2 x 2 grid (700 veh/h per entry edge), 2 simulations, short episodes."""
    env = make_marl_env("traffic:grid", 2, seed=5, episode_limit=6)
    yield env
    env.close()


def test_contract_shapes_dtypes_and_state(grid):
    env = grid
    assert isinstance(env, MultiAgentVecEnv)
    assert (env.n_agents, env.n_actions, env.episode_limit) == (4, 2, 6)
    assert env.obs_spec.shape == (4, 22) and env.state_spec.shape == (72,) and env.action_spec.shape == (4,)
    obs = env.reset(seed=1)
    info = env.current_info()
    assert obs.shape == (2, 4, 22) and obs.dtype == torch.float32
    assert info["state"].shape == (2, 72) and info["avail_actions"].shape == (2, 4, 2) and info["avail_actions"].all()
    assert info["alive"].shape == (2, 4) and info["alive"].all()
    assert torch.equal(obs[:, :, 18:], torch.eye(4).expand(2, 4, 4))  # one-hot light ids
    assert not obs[:, :, :16].any()  # no vehicle has departed yet
    for _ in range(3):
        out = env.step(keep(env))
    assert out.reward.shape == (2,) and out.reward.dtype == torch.float32
    assert out.info["agent_reward"].shape == (2, 4)
    torch.testing.assert_close(out.reward, out.info["agent_reward"].sum(1))  # team reward: the sum (authors')
    assert out.obs[:, :, 12:16].sum() > 0  # vehicles entered
    # State: every light's 17 features, then every light's time since its last change.
    state = out.info["state"]
    torch.testing.assert_close(state[:, :68], out.obs[:, :, :17].reshape(2, -1))
    torch.testing.assert_close(state[:, 68:], out.obs[:, :, 17])


def test_truncation_then_same_step_autoreset_with_a_fresh_simulation(grid):
    """Truncated (never terminated) at the limit; the same step restarts SUMO: obs / state are the fresh run's
    (no vehicles yet), final_obs / final_state the last ones; the next truncation comes a limit later."""
    env = grid
    env.reset(seed=2)
    for _ in range(5):
        out = env.step(keep(env))
        assert not (out.terminated | out.truncated).any() and torch.equal(out.obs, out.final_obs)
        assert torch.equal(out.info["final_state"], out.info["state"])
    out = env.step(keep(env))
    assert out.truncated.all() and not out.terminated.any()
    assert out.final_obs[:, :, 12:16].sum() > 0 and not out.obs[:, :, :16].any()
    assert out.info["final_state"][:, :68].sum() > 0 and not out.info["state"][:, :68].any()
    torch.testing.assert_close(out.info["final_state"][:, 68:], out.final_obs[:, :, 17])
    assert torch.equal(env.current_info()["state"], out.info["state"])
    for _ in range(5):
        assert not env.step(keep(env)).truncated.any()
    assert env.step(keep(env)).truncated.all()


def test_seeded_resets_replay_and_poisson_arrivals_follow_the_seed():
    env = make_traffic_env(2, seed=0, rows=1, cols=1, arrivals="poisson", inflows=1800)
    try:

        def run(seed):
            env.reset(seed=seed)
            return torch.stack([env.step(keep(env)).obs for _ in range(20)])

        a, b, c = run(3), run(3), run(4)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)  # the departures are drawn from SUMO's --seed
        assert not torch.equal(a[:, 0], a[:, 1])  # the two simulations run different seeds
    finally:
        env.close()


def test_one_car_observation_and_reward_by_hand():
    """A single eastbound car meets the red light (north-south is green first): its features and the light's
    reward follow the formula step by step; a switch shows 3 s of yellow, then the car crosses (+1)."""
    env = make_traffic_env(1, seed=0, episode_limit=500, **ONE_CAR)
    try:
        assert env.obs_dim == 19
        env.reset(seed=0)
        stopped_waits = []
        for _ in range(120):  # keep north-south green until the car has stood for 3 s
            out = env.step(keep(env))
            obs, reward = out.obs[0, 0].double(), float(out.reward[0])
            queue, wait, delay, count, axis, _ = per_light(obs)
            assert count.tolist() == [0, 0, 0, 1] and axis == 0  # the car is on the west approach
            assert 0 <= delay[WEST] <= 1 and queue[:WEST].sum() == 0 and wait[:WEST].sum() == 0
            # -0.5 queue - 0.5 wait - 0.5 delay + passed (0) - 0.25 emergency (0: it brakes gently) - switched (0)
            expected = -0.5 * queue.sum() - 0.5 * wait.sum() - 0.5 * delay.sum()
            assert reward == pytest.approx(float(expected), abs=1e-5)
            assert out.info["vehicles_passed"].tolist() == [[0.0]]
            if wait[WEST] > 0:
                assert queue[WEST] == 1 and delay[WEST] == 1.0  # standing: queued, delay 1 - 0 / 35
                assert reward == pytest.approx(-1.0 - 0.5 * float(wait[WEST]), abs=1e-5)
                stopped_waits.append(int(wait[WEST]))
                if wait[WEST] >= 3:
                    break
        assert stopped_waits[-3:] == [1, 2, 3]  # SUMO's waiting time grows by one second per step
        # Switch: yellow on north-south for 3 s (the car keeps waiting, -1 for the switch), then east-west green.
        out = env.step(switch(env))
        queue, wait, delay, count, axis, since = per_light(out.obs[0, 0].double())
        assert float(out.reward[0]) == pytest.approx(-1.0 - 0.5 * 4 - 1.0, abs=1e-5)
        assert axis == 1 and since == 1 and env.signal_states() == [[NS_YELLOW]]
        for second in (2, 3):
            out = env.step(switch(env))  # requests during yellow are ignored
            assert env.signal_states() == [[NS_YELLOW]] and out.obs[0, 0, 17] == second
            assert float(out.reward[0]) == pytest.approx(-1.0 - 0.5 * (3 + second), abs=1e-5)
        out = env.step(keep(env))
        assert env.signal_states() == [[EW_GREEN]]
        # The car crossed in this step: nothing on the approaches, one vehicle passed.
        assert not out.obs[0, 0, :16].any() and out.obs[0, 0, 16] == 1 and out.obs[0, 0, 17] == 1
        assert float(out.reward[0]) == 1.0
        assert out.info["vehicles_passed"].tolist() == [[1.0]]
        out = env.step(keep(env))  # counted once: it is gone from the approaches
        assert out.info["vehicles_passed"].tolist() == [[0.0]]
    finally:
        env.close()


def test_yellow_and_minimum_green_are_honoured():
    """Always asking to switch: green shows ``min_green`` s, yellow ``yellow`` s, read back from SUMO."""
    env = make_traffic_env(1, seed=0, rows=1, cols=1, inflows=0, normalize=False, yellow=2, min_green=3)
    try:
        env.reset()
        shown, rewards = [], []
        for _ in range(12):
            out = env.step(switch(env))
            shown.append(env.signal_states()[0][0])
            rewards.append(float(out.reward[0]))
        g, y, g2, y2 = NS_GREEN, NS_YELLOW, EW_GREEN, "rrryyyrrryyy"
        assert shown == [g, g, g, y, y, g2, g2, g2, y2, y2, g, g]
        assert rewards == [0, 0, 0, -1, 0, 0, 0, 0, -1, 0, 0, 0]  # empty roads: only the switch penalty
    finally:
        env.close()


def test_libsumo_and_traci_give_the_same_trajectory():
    kwargs = {"rows": 1, "cols": 2, "episode_limit": 50, "seed": 7}
    g = torch.Generator().manual_seed(0)
    acts = [torch.randint(0, 2, (1, 2), generator=g) for _ in range(40)]
    outs = {}
    for backend in ("libsumo", "traci"):
        env = make_traffic_env(1, backend=backend, **kwargs)
        try:
            env.reset(seed=7)
            outs[backend] = [env.step(a) for a in acts]
        finally:
            env.close()
    for a, b in zip(outs["libsumo"], outs["traci"]):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)
    assert torch.stack([o.obs for o in outs["traci"]])[..., 12:16].sum() > 0


def test_options_grid_size_reward_modes_and_normalisation():
    env = make_vec_env("traffic:grid", 1, seed=1, options={"rows": 3, "cols": 3, "episode_limit": 10})
    try:
        assert env.n_agents == 9 and env.obs_spec.shape == (9, 27) and env.state_spec.shape == (162,)
        assert len(env.inflows) == 12 and env.inflows == [700.0] * 12
    finally:
        env.close()
    raw = make_traffic_env(1, seed=3, rows=1, cols=2, normalize=False, reward="agent")
    norm = make_traffic_env(1, seed=3, rows=1, cols=2, team_reward="mean")
    try:
        raw.reset(seed=3), norm.reset(seed=3)
        for _ in range(30):
            r, n = raw.step(keep(raw)), norm.step(keep(norm))
        assert r.reward.shape == (1, 2) and n.reward.shape == (1,)
        torch.testing.assert_close(n.reward, r.reward.mean(1))
        capacity = 400 / VEHICLE_SPACE
        scale = torch.tensor([capacity] * 4 + [60.0] * 4 + [1.0] * 4 + [capacity] * 4 + [1.0, 60.0])
        torch.testing.assert_close(n.obs[..., :18] * scale, r.obs[..., :18])
        assert r.obs[..., 12:16].sum() > 0
    finally:
        raw.close(), norm.close()


def test_perturbation_options_vehicle_speed_and_skewed_inflows():
    """``vehicle_speed`` caps the cars (delay stays high); ``inflows`` chooses the entries that get traffic."""
    env = make_traffic_env(1, seed=0, episode_limit=500, vehicle_speed=5.0, **ONE_CAR)
    try:
        env.reset()
        delays = [float(env.step(keep(env)).obs[0, 0, 8 + WEST]) for _ in range(10)]
        assert min(delays) > 1 - 5.0 * 1.3 / 35  # speed factor 1 +- 0.1 (normal, capped)
    finally:
        env.close()
    env = make_traffic_env(1, seed=0, rows=1, cols=1, inflows=[3600, 0, 0, 0], normalize=False)
    try:
        env.reset()
        for _ in range(20):
            obs = env.step(keep(env)).obs[0, 0]
        assert obs[12] > 0 and obs[13:16].sum() == 0  # only the southbound entry (from the north) has cars
    finally:
        env.close()


def test_vehicles_enter_an_entry_edge_shorter_than_their_braking_distance():
    """100 m edges, the car's light red: it enters at the highest safe speed (not the fixed 35 m/s, which would
    keep it out of the network until the light turns green) and stops at the line."""
    env = make_traffic_env(1, seed=0, episode_limit=500, edge_length=100.0, **ONE_CAR)
    try:
        env.reset()
        obs = env.step(keep(env)).obs[0, 0]
        assert obs[12:16].tolist() == [0, 0, 0, 1] and 0 < obs[8 + WEST] < 1
        for _ in range(30):
            obs = env.step(keep(env)).obs[0, 0]
        assert obs[WEST] == 1 and obs[4 + WEST] > 0  # queued and waiting at the red light
    finally:
        env.close()


def test_malicious_lights_flip_actions():
    env = make_vec_env(
        "traffic:grid",
        1,
        seed=0,
        options={"rows": 1, "cols": 2, "inflows": 0, "normalize": False, "min_green": 1},
        wrappers=[{"name": "malicious_lights", "p": 1.0, "lights": [1]}],
    )
    try:
        assert isinstance(env, MaliciousLights)
        env.reset(seed=0)
        env.step(keep(env))  # since the last change: 1 s >= min_green for the next step
        out = env.step(keep(env))  # light 1's keep became a switch
        assert out.info["flipped"].tolist() == [[False, True]]
        assert out.obs[0, :, 16].tolist() == [0.0, 1.0] and out.info["agent_reward"].tolist() == [[0.0, -1.0]]
    finally:
        env.close()
    base = make_traffic_env(2, seed=0, rows=1, cols=2, inflows=0)
    try:
        flips = []
        for _ in range(2):
            wrapped = MaliciousLights(base, p=0.3, seed=4)
            wrapped.reset(seed=1)
            flips.append(torch.stack([wrapped.step(keep(base)).info["flipped"] for _ in range(20)]))
        assert torch.equal(flips[0], flips[1]) and 0 < flips[0].float().mean() < 0.6
        assert not MaliciousLights(base, p=0.0).step(keep(base)).info["flipped"].any()
    finally:
        base.close()
    with pytest.raises(ValueError, match="p must be in"):
        MaliciousLights(base, p=1.5)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"inflows": [700, 700, 700]}, r"inflows has 3 values; a 2x2 grid has 8 entry edges"),
        ({"inflows": [700] * 7 + [-1]}, r"inflows\[7\]=-1 is not valid"),
        ({"rows": 0}, r"rows=0 is not valid; expected an integer >= 1"),
        ({"cols": 1.5}, r"cols=1.5 is not valid"),
        ({"yellow": 0}, r"yellow=0 is not valid"),
        ({"backend": "cityflow"}, r"backend='cityflow' is not valid; choose from libsumo, traci"),
        ({"arrivals": "bursty"}, r"arrivals='bursty' is not valid"),
        ({"lanes": 2}, r"unknown option\(s\) lanes; valid: "),
        ({"actions": "continuous"}, r"discrete actions only"),
    ],
)
def test_bad_options_fail_with_one_line(options, match):
    with pytest.raises(EnvError, match=match) as err:
        make_vec_env("traffic:grid", 1, options=options)
    assert "\n" not in str(err.value)


def test_unknown_traffic_id():
    with pytest.raises(EnvError, match="unknown traffic env 'traffic:city'; known: traffic:grid"):
        make_vec_env("traffic:city", 1)


def test_missing_sumo_binary_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sumo", None)  # the eclipse-sumo wheel cannot be imported
    monkeypatch.delenv("SUMO_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvError, match=r"netgenerate binary was not found .*pip install -e \.\[traffic\]"):
        make_traffic_env(1)


def test_a_sumo_error_is_one_line_naming_sumos_message_and_closes_everything():
    for backend in ("libsumo", "traci"):
        env = make_traffic_env(2, rows=1, cols=1, backend=backend)
        pids, directory = env.pids, env.directory
        os.remove(os.path.join(directory, "grid.net.xml"))
        with pytest.raises(EnvError, match=r"simulation 0: SUMO error: File '.*grid.net.xml' is not accessible"):
            env.reset()
        assert env.pids == [] and not os.path.exists(directory) and wait_gone(pids) == []
        with pytest.raises(EnvError, match="closed"):
            env.step(keep(env))


def test_a_dead_simulation_is_reported_and_the_rest_closed():
    env = make_traffic_env(2, rows=1, cols=1)
    pids = env.pids
    os.kill(pids[1], signal.SIGKILL)
    with pytest.raises(EnvError, match=r"simulation 1: the SUMO worker process died \(killed by signal 9\)"):
        env.step(keep(env))
    assert wait_gone(pids) == []


def test_close_ends_the_simulations_and_removes_the_network():
    for backend in ("libsumo", "traci"):
        env = make_traffic_env(2, rows=1, cols=1, backend=backend)
        pids, directory = env.pids, env.directory
        assert len(pids) == 2 and all(alive(p) for p in pids) and os.path.isdir(directory)
        env.close()
        env.close()  # idempotent
        assert wait_gone(pids) == [] and not os.path.exists(directory)


CHILD = """
import sys, time, torch
sys.path.insert(0, {root!r})
from envs import make_vec_env
env = make_vec_env("traffic:grid", 2, options={{"rows": 1, "cols": 1, "backend": sys.argv[1]}})
env.step(torch.zeros(2, 1, dtype=torch.int64))
print(env.directory, " ".join(map(str, env.pids)), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_no_sumo_process_outlives_a_sigkilled_parent(backend):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT)), backend],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = child.stdout.readline()
        directory, *pids = line.split()
        pids = [int(p) for p in pids]
        assert len(pids) == 2 and all(alive(p) for p in pids), line
    finally:
        child.kill()  # SIGKILL: no Python cleanup runs in the parent
        child.wait()
        child.stdout.close()
    assert wait_gone(pids) == []
    # The killed run's network folder stays behind until the next env is built, which removes it.
    assert os.path.isdir(directory)
    make_traffic_env(1, rows=1, cols=1).close()
    assert not os.path.exists(directory)


def test_a_bad_option_exits_the_cli_with_one_line():
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "vdn/predator-prey",
            "env.id=traffic:grid",
            'env.options={"inflows": [700, 700]}',
            f"--run-dir={ROOT / 'runs' / 'test-traffic-bad-option'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        "error: traffic env: env.options.inflows has 2 values; a 2x2 grid has 8 entry edges (one number for all, "
        "or 2 * (rows + cols) numbers)"
    ]
    assert not (ROOT / "runs" / "test-traffic-bad-option").exists()


def test_a_marl_preset_trains_on_the_grid():
    """VDN's predator-prey preset pointed at a 1 x 2 grid: a few episodes and updates through the episodic loop."""
    cfg = apply_overrides(
        PRESETS["vdn/predator-prey"],
        [
            "env.id=traffic:grid",
            'env.options={"rows": 1, "cols": 2, "episode_limit": 6}',
            "env.num_envs=2",
            "train.total_steps=36",
            "train.batch_episodes=2",
            "train.update_after_episodes=2",
            "train.eval_every=0",
            "train.eval_episodes=2",
            "train.progress=false",
            *TINY_AGENT_OVERRIDES,
        ],
    )
    rows = []
    out = train_config(cfg, log=lambda step, metrics: rows.append(metrics))
    assert out["steps"] == 36 and out["episodes"] == 6 and out["updates"] >= 1
    assert all(torch.isfinite(m["loss/td"]) for m in rows if "loss/td" in m)
    assert out["buffer"].sample(2)["obs"].shape == (2, 7, 2, 17 + 1 + 2)
    assert torch.isfinite(out["final_eval"]["eval/mean_reward"])
