"""N grid simulations behind one interface: libsumo in worker processes (default) or SUMO processes over TraCI.

libsumo runs one simulation per process, so the ``libsumo`` backend forks one worker per simulation; the parent
sends every worker its command before reading any answer, so the workers step in parallel. The ``traci`` backend
starts one ``sumo`` process per simulation and drives them from the parent over TraCI sockets, one after
the other (on the 2x2 grid libsumo is about 3x faster per simulation and the libsumo VecEnv about 2x the TraCI
one, see docs/benchmarks.md; TraCI is kept for debugging).

Lifetime: every child (worker or ``sumo``) asks the Linux kernel to SIGKILL it when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), so a parent killed with SIGKILL leaves no simulation behind; where ``prctl`` is
missing a worker also exits when its command pipe reaches end of file. Workers ignore SIGINT (Ctrl-C reaches
the whole process group; the parent closes them). ``close()`` is idempotent and also runs from a finalizer.

Errors: a SUMO error in a simulation (a libsumo / TraCI exception) or a dead worker raises :class:`SimulationError`
with one line naming SUMO's message; the env closes every simulation and turns it into ``EnvError``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import io
import multiprocessing
import os
import signal
import subprocess
import sys
from typing import Any

import numpy as np

from envs.traffic.network import GridLayout, sumo_binary
from envs.traffic.simulation import GridSimulation

BACKENDS = ("libsumo", "traci")
PR_SET_PDEATHSIG = 1


class SimulationError(RuntimeError):
    """A simulation failed (SUMO's error, or its process died); the message is one line."""


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit now if it already has.

    Runs in the child right after fork (worker) or before exec (``sumo``, as ``preexec_fn``). The kernel ties
    the signal to the thread that forked the child, so build the env in a thread that outlives it (the main one).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pipe end-of-file check of the worker loop remains
        return
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def _load_libsumo() -> Any:
    """Import libsumo without its import-time chatter on stdout (a pyarrow version note)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import libsumo
    return libsumo


def sumo_error(log_path: str | None, error: BaseException | None) -> str:
    """SUMO's own message (the last ``Error:`` line it wrote to ``log_path``), else the exception's text
    (else "")."""
    lines: list[str] = []
    if log_path is not None and os.path.exists(log_path):
        with open(log_path, errors="replace") as log:
            lines = [line.strip() for line in log if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    if errors:
        return errors[-1].removeprefix("Error:").strip()
    return "" if error is None else _one_line(error)


def _worker(
    conn: Any, parent_conn: Any, parent_pid: int, layout: GridLayout, params: dict[str, Any], log_path: str
) -> None:
    """Worker process: one libsumo simulation serving ``(command, data)`` messages until ``close`` or EOF.

    SUMO writes its messages to stderr (file descriptor 2), which goes to ``log_path`` here, so that an error
    reaches the parent as SUMO's own line instead of libsumo's bare "Process Error".
    """
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_conn.close()  # so that the parent's death closes the pipe here
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 2)
    os.close(log)
    try:
        sim = GridSimulation(_load_libsumo(), layout, **params)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"libsumo could not start: {_one_line(e)}"))
        return
    while True:
        try:
            command, data = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if command == "close":
            break
        try:
            if command == "reset":
                sim.restart(data)
                result = sim.observe()
            elif command == "signals":
                result = sim.signals()
            else:
                result = sim.step(data)
            conn.send(("ok", result))
        except Exception as e:  # noqa: BLE001 - SUMO's error travels to the parent as one line
            sys.stderr.flush()
            conn.send(("error", sumo_error(log_path, e)))
    sim.close()
    conn.close()


class LibsumoWorkers:
    """``n`` worker processes, one libsumo simulation each."""

    def __init__(self, n: int, layout: GridLayout, params: dict[str, Any], log_dir: str):
        fork = "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if fork else None)
        if fork:  # import once here (about a second): every forked worker inherits the loaded module
            _load_libsumo()  # the parent never starts a simulation, so each worker's libsumo starts empty
        self.conns, self.procs = [], []
        self.logs = [os.path.join(log_dir, f"sumo-{i}.log") for i in range(n)]
        self.closed = False
        # Freeze the parent's objects while forking: the children's garbage collector then never writes to
        # their pages, so a large parent (replay buffers, models) is not copied into every worker.
        gc.freeze()
        try:
            for i in range(n):
                parent_conn, child_conn = context.Pipe()
                args = (child_conn, parent_conn, os.getpid(), layout, params, self.logs[i])
                proc = context.Process(target=_worker, args=args, daemon=True)
                proc.start()
                child_conn.close()
                self.conns.append(parent_conn)
                self.procs.append(proc)
        finally:
            gc.unfreeze()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _call(self, rows: list[int], command: str, data: list[Any]) -> list[Any]:
        for i, item in zip(rows, data):
            try:
                self.conns[i].send((command, item))
            except (BrokenPipeError, OSError):
                pass  # reported by the read below
        results = []
        for i in rows:
            try:
                status, result = self.conns[i].recv()
            except (EOFError, OSError, ConnectionResetError):
                self.procs[i].join(timeout=1.0)
                code = self.procs[i].exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                said = sumo_error(self.logs[i], None)
                raise SimulationError(
                    f"simulation {i}: the SUMO worker process died ({how})" + (f": {said}" if said else "")
                ) from None
            if status != "ok":
                raise SimulationError(f"simulation {i}: SUMO error: {result}")
            results.append(result)
        return results

    def reset(self, rows: list[int], args: list[list[str]]) -> list[Any]:
        return self._call(rows, "reset", args)

    def step(self, actions: np.ndarray) -> list[Any]:
        return self._call(list(range(len(self.conns))), "step", list(actions))

    def signals(self) -> list[Any]:
        return self._call(list(range(len(self.conns))), "signals", [None] * len(self.conns))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.send(("close", None))
        for proc in self.procs:
            proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2.0)
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.close()


class TraciSimulations:
    """``n`` ``sumo`` processes driven over TraCI from this process."""

    def __init__(self, n: int, layout: GridLayout, params: dict[str, Any], log_dir: str):
        import traci  # noqa: F401 - fail here when the package is missing

        self.n, self.layout, self.params = n, layout, params
        self.logs = [os.path.join(log_dir, f"sumo-{i}.log") for i in range(n)]
        self.sims: list[GridSimulation | None] = [None] * n
        self.procs: list[subprocess.Popen | None] = [None] * n
        self.closed = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def _start(self, i: int, args: list[str]) -> GridSimulation:
        import traci
        from sumolib.miscutils import getFreeSocketPort

        port = getFreeSocketPort()
        parent = os.getpid()
        with open(self.logs[i], "w") as log:
            proc = subprocess.Popen(
                [sumo_binary("sumo"), "--remote-port", str(port), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=lambda: die_with_parent(parent),
            )
        self.procs[i] = proc
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # traci prints each connection retry
                connection = traci.connect(port, numRetries=400, proc=proc, waitBetweenRetries=0.025)
        except Exception as e:  # noqa: BLE001 - sumo exited: its log says why
            raise SimulationError(f"simulation {i}: SUMO error: {sumo_error(self.logs[i], e)}") from None
        sim = GridSimulation(connection, self.layout, **self.params)
        sim._begin()
        return sim

    def _guard(self, i: int, call: Any) -> Any:
        try:
            return call()
        except SimulationError:
            raise
        except Exception as e:  # noqa: BLE001 - traci's exceptions, or a dead sumo
            raise SimulationError(f"simulation {i}: SUMO error: {sumo_error(self.logs[i], e)}") from None

    def reset(self, rows: list[int], args: list[list[str]]) -> list[Any]:
        out = []
        for i, row_args in zip(rows, args):
            if self.sims[i] is None:
                self.sims[i] = self._start(i, row_args)
            else:
                self._guard(i, lambda i=i, a=row_args: self.sims[i].restart(a))
            out.append(self._guard(i, self.sims[i].observe))
        return out

    def step(self, actions: np.ndarray) -> list[Any]:
        return [self._guard(i, lambda i=i: self.sims[i].step(actions[i])) for i in range(self.n)]

    def signals(self) -> list[Any]:
        return [self._guard(i, self.sims[i].signals) for i in range(self.n)]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sim in self.sims:
            if sim is not None:
                sim.close()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=2.0)


def make_backend(
    name: str, n: int, layout: GridLayout, params: dict[str, Any], log_dir: str
) -> LibsumoWorkers | TraciSimulations:
    """``n`` simulations on backend ``name`` (``libsumo`` or ``traci``); SUMO's messages go to ``log_dir``."""
    if name == "libsumo":
        return LibsumoWorkers(n, layout, params, log_dir)
    return TraciSimulations(n, layout, params, log_dir)


def backend_missing(name: str) -> str | None:
    """None when the Python package of backend ``name`` is installed, else the package's name.

    Looks the package up without importing it: libsumo must not be imported in the parent (the workers fork).
    """
    module = "libsumo" if name == "libsumo" else "traci"
    return None if importlib.util.find_spec(module) is not None else module
