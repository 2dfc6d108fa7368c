"""Traffic-signal control on a SUMO grid as a cooperative ``MultiAgentVecEnv`` (``env.id = traffic:grid``).

The setting of ERNIE's traffic experiments (Bukharin et al., NeurIPS 2023, arXiv 2310.10810; their code runs
Flow on SUMO), rebuilt on SUMO directly: every traffic light of a ``rows x cols`` grid is an agent with a binary
action (0 keep, 1 switch). See docs/algorithms/traffic.md for the full description and the deviations.

Shapes for N simulations and L = rows * cols lights:

* ``obs [N, L, 18 + L]`` float32: per light, for its incoming edges from the north, east, south, west the queue
  (4), mean waiting time (4), delay (4) and vehicle count (4), its green axis (0 north-south, 1 east-west), the
  seconds since its last change, and a one-hot light id. Normalised by default (``normalize=True``): counts and
  queues divided by the edge's capacity ``edge_length / 7.5`` vehicles, times by 60 s; ``normalize=False`` gives
  the raw units (vehicles, seconds) as in the authors' code;
* ``info["state"] [N, 18 L]``: every light's 17 features then every light's time since its last change
  (normalised like the observations);
* ``reward [N]``: the sum (``team_reward="sum"``, default, the authors') or mean of the per-light rewards, or
  with ``reward="agent"`` the per-light rewards ``[N, L]``; ``info["agent_reward"] [N, L]`` always holds them;
* ``action [N, L]`` int64 in {0, 1}; ``info["avail_actions"] [N, L, 2]`` all True (a switch the light cannot make
  yet is a no-op, as in the authors' env); ``info["alive"]`` all True;
* ``info["vehicles_passed"] [N, L]``: vehicles that left each light's incoming edges in this step (the reward's
  ``passed`` term; summed over lights and steps it is the grid's throughput);
* ``terminated`` never; ``truncated`` at ``episode_limit`` (default 3000 one-second steps: the authors' training
  episode). A finished simulation restarts in the same step as a fresh SUMO run (new ``--seed``).

Every option (grid size, edge length, speed limit, vehicle speed, inflows, yellow and minimum green, backend)
is a keyword of :func:`make_traffic_env`, so ``env.options.rows=3 env.options.cols=3`` is a 3 x 3 grid.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut
from envs.multiagent import MultiAgentOptions, finalize_info
from envs.traffic.backends import BACKENDS, SimulationError, backend_missing, make_backend
from envs.traffic.network import VEHICLE_SPACE, NetworkError, generate_grid, read_layout, sumo_binary, write_routes
from envs.traffic.simulation import FEATURES

TRAFFIC_EXTRA_HINT = "pip install -e .[traffic]"
TIME_SCALE = 60.0  # seconds: waiting times and times since the last change are divided by it when normalising
AUTHORS_INFLOW = 700.0  # vehicles/hour on every entry edge (the authors' training demand)


def _error(message: str) -> Exception:
    from envs import EnvError

    return EnvError(message)


DIRECTORY_PREFIX = "regula-sumo-"


def _sweep_stale_directories() -> None:
    """Remove network folders left by killed runs (``regula-sumo-PID-*`` whose process no longer exists).

    A SIGKILLed parent cannot remove its folder (its simulations die with it, see :mod:`envs.traffic.backends`);
    the next env built on the machine does.
    """
    root = Path(tempfile.gettempdir())
    for path in root.glob(f"{DIRECTORY_PREFIX}*-*"):
        pid = path.name[len(DIRECTORY_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive, owned by someone else
            pass


def _cleanup(backend: Any, directory: str) -> None:
    """Close the simulations and remove the run's network folder (also the finalizer of the env)."""
    try:
        if backend is not None:
            backend.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class TrafficGrid:
    """N SUMO simulations of a signalised grid as one ``MultiAgentVecEnv`` (shapes in the module docstring).

    Build it with :func:`make_traffic_env`. ``pids`` lists the processes running the simulations;
    ``generator`` (a CPU ``torch.Generator``) draws each episode's SUMO seed, so a seeded reset replays and the
    collector can checkpoint it.
    """

    def __init__(
        self,
        options: MultiAgentOptions,
        *,
        rows: int,
        cols: int,
        edge_length: float,
        speed_limit: float,
        vehicle_speed: float,
        inflows: list[float],
        arrivals: str,
        yellow: int,
        min_green: int,
        normalize: bool,
        reward_scale: float,
        backend: str,
    ):
        self.multi_agent_options = options
        self.num_envs = int(options.num_envs)
        self.device = torch.device(options.device)
        self.episode_limit = int(options.episode_limit)
        self.team_reward = options.team_reward
        self.reward_mode = options.reward
        self.rows, self.cols = rows, cols
        self.edge_length, self.speed_limit, self.vehicle_speed = edge_length, speed_limit, vehicle_speed
        self.inflows, self.arrivals, self.yellow, self.min_green = list(inflows), arrivals, yellow, min_green
        self.normalize, self.reward_scale, self.backend_name = normalize, reward_scale, backend
        self._backend = None
        _sweep_stale_directories()
        self.directory = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-")
        self._finalizer = weakref.finalize(self, _cleanup, None, self.directory)
        try:
            net = generate_grid(Path(self.directory), rows, cols, edge_length, speed_limit)
            self.layout = read_layout(net, rows, cols)
            routes = write_routes(
                Path(self.directory) / "grid.rou.xml", self.layout, self.inflows, vehicle_speed, arrivals
            )
        except NetworkError as e:
            self._finalizer()
            raise _error(f"traffic env: {e}") from None
        self.sumo_args = [
            "--net-file", str(net),
            "--route-files", str(routes),
            "--step-length", "1",
            "--time-to-teleport", "-1",  # a jammed vehicle waits (Flow's setting), it never jumps ahead
            "--no-step-log", "true",
            "--no-warnings", "true",
            "--duration-log.disable", "true",
            "--xml-validation", "never",  # no schema lookups (never a download); the files are generated here
            "--xml-validation.net", "never",
            "--xml-validation.routes", "never",
        ]  # fmt: skip

        self.n_agents = len(self.layout.lights)
        self.n_actions = 2
        self.agent_names = self.layout.lights
        self.obs_dim = FEATURES + 1 + self.n_agents
        self.obs_dims = (self.obs_dim,) * self.n_agents
        self.state_dim = (FEATURES + 1) * self.n_agents
        self.obs_spec = BoxSpec((self.n_agents, self.obs_dim), low=-float("inf"), high=float("inf"))
        self.state_spec = BoxSpec((self.state_dim,), low=-float("inf"), high=float("inf"))
        self.action_spec = DiscreteSpec(self.n_actions, (self.n_agents,))
        capacity = edge_length / VEHICLE_SPACE
        scale = np.ones(FEATURES)
        if normalize:  # queue, wait, delay, count per edge; the axis stays 0/1
            scale[:16] = np.repeat([capacity, TIME_SCALE, 1.0, capacity], 4)
        self._feature_scale = scale
        self._time_scale = TIME_SCALE if normalize else 1.0
        self._one_hot = np.eye(self.n_agents)
        self.generator = torch.Generator().manual_seed(0 if options.seed is None else int(options.seed))
        params = {"yellow": yellow, "min_green": min_green, "speed_limit": speed_limit}
        self._backend = make_backend(backend, self.num_envs, self.layout, params, self.directory)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self._backend, self.directory)
        self._steps = np.zeros(self.num_envs, np.int64)
        self._seeds = np.zeros(self.num_envs, np.int64)  # each simulation's episode seed
        self._history: list[np.ndarray] = []  # actions [n, L] of the running episodes (they run in step)
        self._avail = torch.ones(self.num_envs, self.n_agents, 2, dtype=torch.bool, device=self.device)
        self._alive = torch.ones(self.num_envs, self.n_agents, dtype=torch.bool, device=self.device)
        self.reset()

    # ------------------------------------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Process ids of the simulations (worker processes, or ``sumo`` processes for ``backend='traci'``)."""
        return [] if self._backend is None else self._backend.pids

    def _run(self, call: Any, *args: Any) -> list[Any]:
        """A backend call; on a SUMO error close everything and raise ``EnvError`` (one line).

        Any other interruption (Ctrl-C in the middle of a step) also closes the simulations: their answers
        would be out of step with the next call's.
        """
        try:
            return call(*args)
        except SimulationError as e:
            self.close()
            raise _error(f"traffic env: {e}") from None
        except BaseException:
            self.close()
            raise

    def _episode_args(self, rows: Sequence[int]) -> list[list[str]]:
        seeds = torch.randint(0, 2**31 - 1, (len(rows),), generator=self.generator).tolist()
        self._seeds[list(rows)] = seeds
        return [[*self.sumo_args, "--seed", str(s)] for s in seeds]

    def state_dict(self) -> dict[str, Any]:
        """What :meth:`load_state_dict` needs to rebuild every simulation exactly: the seed generator, each
        simulation's episode seed and the actions of the running episodes (SUMO is deterministic given both)."""
        history = np.stack(self._history) if self._history else np.zeros((0, self.num_envs, self.n_agents), np.int8)
        return {
            "generator": self.generator.get_state(),
            "seeds": torch.from_numpy(self._seeds.copy()),
            "steps": torch.from_numpy(self._steps.copy()),
            "actions": torch.from_numpy(history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restart every simulation with its saved episode seed and replay the saved actions (a resumed run
        continues the same trajectories; costs one simulated second per step of the running episodes)."""
        if self._backend is None:
            raise _error("traffic env: the env is closed")
        self.generator.set_state(state["generator"].cpu())
        seeds = state["seeds"].cpu().numpy().astype(np.int64)
        actions = state["actions"].cpu().numpy()
        rows = list(range(self.num_envs))
        args = [[*self.sumo_args, "--seed", str(int(s))] for s in seeds]
        obs, st, _, _ = self._pack(self._run(self._backend.reset, rows, args))
        for a in actions:
            obs, st, _, _ = self._pack(self._run(self._backend.step, a.astype(np.int64)))
        self._seeds[:] = seeds
        self._steps[:] = state["steps"].cpu().numpy()
        self._history = list(actions)
        self._obs, self._state = obs, st

    def _pack(self, results: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Worker results -> obs ``[n, L, D]``, state ``[n, S]``, per-light rewards and vehicles passed ``[n, L]``
        (numpy)."""
        features = np.stack([r[0] for r in results]) / self._feature_scale  # [n, L, 17]
        since = np.stack([r[1] for r in results]) / self._time_scale  # [n, L]
        reward = np.stack([r[2] for r in results])  # [n, L]
        passed = np.stack([r[3] for r in results])  # [n, L]
        n = len(results)
        one_hot = np.broadcast_to(self._one_hot, (n, self.n_agents, self.n_agents))
        obs = np.concatenate([features, since[..., None], one_hot], -1)
        state = np.concatenate([features.reshape(n, -1), since], -1)
        return obs.astype(np.float32), state.astype(np.float32), reward.astype(np.float32), passed.astype(np.float32)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _info(self, state: np.ndarray) -> dict[str, torch.Tensor]:
        return {"state": self._tensor(state), "avail_actions": self._avail.clone(), "alive": self._alive.clone()}

    # ------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Restart every simulation (fresh SUMO runs; ``seed`` reseeds the episode seeds); obs ``[N, L, D]``."""
        if self._backend is None:
            raise _error("traffic env: the env is closed")
        if seed is not None:
            self.generator.manual_seed(int(seed))
        rows = list(range(self.num_envs))
        obs, state, _, _ = self._pack(self._run(self._backend.reset, rows, self._episode_args(rows)))
        self._obs, self._state = obs, state
        self._steps[:] = 0
        self._history = []
        return self._tensor(obs)

    def current_info(self) -> dict[str, torch.Tensor]:
        return self._info(self._state)

    def signal_states(self) -> list[list[str]]:
        """SUMO's current signal string of every light, per simulation (read back from SUMO; for checks)."""
        if self._backend is None:
            raise _error("traffic env: the env is closed")
        return self._run(self._backend.signals)

    def step(self, action: torch.Tensor) -> StepOut:
        """Apply ``[N, L]`` switch (1) / keep (0) actions for one second; restart finished simulations."""
        if self._backend is None:
            raise _error("traffic env: the env is closed")
        actions = action.detach().to("cpu", torch.int64).reshape(self.num_envs, self.n_agents).numpy()
        final_obs, final_state, light_reward, passed = self._pack(self._run(self._backend.step, actions))
        self._history.append(actions.astype(np.int8))
        light_reward = light_reward * self.reward_scale
        self._steps += 1
        truncated = self._steps >= self.episode_limit
        terminated = np.zeros(self.num_envs, bool)
        obs, state = final_obs, final_state
        done_rows = np.flatnonzero(truncated).tolist()
        if done_rows:
            obs, state = final_obs.copy(), final_state.copy()
            fresh_obs, fresh_state, _, _ = self._pack(
                self._run(self._backend.reset, done_rows, self._episode_args(done_rows))
            )
            obs[done_rows], state[done_rows] = fresh_obs, fresh_state
            self._steps[done_rows] = 0
            if len(done_rows) == self.num_envs:  # the simulations run in step: every episode restarts at once
                self._history = []
        self._obs, self._state = obs, state
        if self.reward_mode == "agent":
            reward = light_reward
        else:
            reward = light_reward.sum(1) if self.team_reward == "sum" else light_reward.mean(1)
        done = self._tensor(truncated)
        info = finalize_info(self._info(state), self._info(final_state), done)
        info["agent_reward"] = self._tensor(light_reward)
        info["vehicles_passed"] = self._tensor(passed)
        return StepOut(
            self._tensor(obs), self._tensor(reward), self._tensor(terminated), done, self._tensor(final_obs), info
        )

    def close(self) -> None:
        """Close every simulation and remove the network folder (idempotent)."""
        self._backend = None
        self._finalizer()

    def __enter__(self) -> TrafficGrid:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _number(name: str, value: Any, *, low: float, integer: bool = False, strict: bool = True) -> Any:
    """``value`` as a number ``> low`` (``>= low`` when ``strict`` is False), else a one-line ``EnvError``."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer and float(value) != int(value):
        ok = False
    if ok and not (value > low if strict else value >= low):
        ok = False
    if not ok:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise _error(f"traffic env: env.options.{name}={value!r} is not valid; expected {kind} {bound}")
    return int(value) if integer else float(value)


def make_traffic_env(
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    rows: int = 2,
    cols: int = 2,
    edge_length: float = 400.0,
    speed_limit: float = 35.0,
    vehicle_speed: float | None = None,
    inflows: float | Sequence[float] = AUTHORS_INFLOW,
    arrivals: str = "regular",
    yellow: int = 3,
    min_green: int = 2,
    normalize: bool = True,
    reward_scale: float = 1.0,
    backend: str = "libsumo",
    **kwargs: Any,
) -> TrafficGrid:
    """The traffic-signal grid (``env.id = traffic:grid``) with ``num_envs`` SUMO simulations.

    Options (defaults: the authors' setting): ``rows`` x ``cols`` lights (2 x 2); ``edge_length`` metres
    (400, every edge: inner, entry and exit); ``speed_limit`` m/s (35); ``vehicle_speed`` the vehicles' maximum
    (and entry) speed (None: the speed limit; a perturbation option); ``inflows`` vehicles/hour per entry edge, one
    number for all or ``2 * (rows + cols)`` numbers in the order of :mod:`envs.traffic.network` (700;
    a perturbation option: skewed demand); ``arrivals`` ``regular`` (evenly spaced, the authors') or
    ``poisson`` (random departures at the same mean rate, a different stream per episode seed); ``yellow``
    seconds of yellow (3); ``min_green`` seconds a green shows before a switch is honoured (2, the authors'
    effective minimum); ``normalize`` the observations (True); ``reward_scale`` multiplies every reward (1);
    ``backend`` ``libsumo`` (worker processes, default) or ``traci``. The env-level options (``episode_limit``
    default 3000, ``team_reward`` default ``sum``,
    ``reward``) come as keywords or ``options`` (:class:`envs.multiagent.MultiAgentOptions`).
    """
    try:
        opts, rest = MultiAgentOptions.resolve(
            options,
            num_envs=num_envs,
            device=device,
            seed=seed,
            defaults={"episode_limit": 3000, "team_reward": "sum"},
            **kwargs,
        )
    except (ValueError, NotImplementedError) as e:
        raise _error(f"traffic env: {e}") from None
    if rest:
        known = sorted(
            {"rows", "cols", "edge_length", "speed_limit", "vehicle_speed", "inflows", "arrivals", "yellow"}
            | {"min_green"}
            | {"normalize", "reward_scale", "backend", "episode_limit", "team_reward", "reward"}
        )
        raise _error(f"traffic env: unknown option(s) {', '.join(sorted(rest))}; valid: {', '.join(known)}")
    if opts.continuous:
        raise _error("traffic env: the lights take discrete actions only (actions='discrete')")
    rows = _number("rows", rows, low=1, integer=True, strict=False)
    cols = _number("cols", cols, low=1, integer=True, strict=False)
    edge_length = _number("edge_length", edge_length, low=VEHICLE_SPACE)
    speed_limit = _number("speed_limit", speed_limit, low=0)
    vehicle_speed = speed_limit if vehicle_speed is None else _number("vehicle_speed", vehicle_speed, low=0)
    yellow = _number("yellow", yellow, low=1, integer=True, strict=False)
    min_green = _number("min_green", min_green, low=1, integer=True, strict=False)
    reward_scale = _number("reward_scale", reward_scale, low=0)
    if not isinstance(normalize, bool):
        raise _error(f"traffic env: env.options.normalize={normalize!r} is not valid; expected true or false")
    entries = 2 * (rows + cols)
    values = [inflows] * entries if isinstance(inflows, (int, float)) and not isinstance(inflows, bool) else inflows
    if not isinstance(values, (list, tuple)) or len(values) != entries:
        count = len(values) if isinstance(values, (list, tuple)) else "not a list of"
        raise _error(
            f"traffic env: env.options.inflows has {count} values; a {rows}x{cols} grid has {entries} entry edges "
            "(one number for all, or 2 * (rows + cols) numbers)"
        )
    for i, value in enumerate(values):
        _number(f"inflows[{i}]", value, low=0, strict=False)
    if arrivals not in ("regular", "poisson"):
        raise _error(f"traffic env: env.options.arrivals={arrivals!r} is not valid; choose from regular, poisson")
    if backend not in BACKENDS:
        raise _error(f"traffic env: env.options.backend={backend!r} is not valid; choose from {', '.join(BACKENDS)}")
    missing = backend_missing(backend)
    if missing:
        raise _error(f"traffic env: the {missing} package is missing: {TRAFFIC_EXTRA_HINT}")
    try:
        sumo_binary("netgenerate")
        sumo_binary("sumo")
    except NetworkError as e:
        raise _error(f"traffic env: {e}") from None
    return TrafficGrid(
        opts,
        rows=rows,
        cols=cols,
        edge_length=edge_length,
        speed_limit=speed_limit,
        vehicle_speed=vehicle_speed,
        inflows=[float(v) for v in values],
        arrivals=arrivals,
        yellow=yellow,
        min_green=min_green,
        normalize=normalize,
        reward_scale=reward_scale,
        backend=backend,
    )


TRAFFIC_ENVS = ("traffic:grid",)


def make_traffic_marl_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    **kwargs: Any,
) -> TrafficGrid:
    """``traffic:grid`` -> :func:`make_traffic_env` (the id form of ``envs.multiagent.MARL_ENV_PREFIXES``)."""
    if env_id not in TRAFFIC_ENVS:
        raise _error(f"unknown traffic env {env_id!r}; known: {', '.join(TRAFFIC_ENVS)}")
    return make_traffic_env(num_envs, device, seed, options=options, **kwargs)
