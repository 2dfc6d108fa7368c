"""One update step compiled as one graph, called with the least per-call overhead.

A small-network update is mostly per-call overhead once compiled: on the 2-core CPU a 256x256 SAC
step runs in about 3 ms, of which Dynamo's guard checks (every input tensor's shape, stride and
dtype, every Python constant) and inductor's Python wrapper (one call per kernel, one size assert
per buffer) take about 0.3 ms. :class:`CompiledStep` removes both:

* inductor's ``cpp_wrapper``: the graph's kernel calls are made from generated C++ rather than a
  Python function (the inductor backend only; tests trace with ``aot_eager``, which has no options);
* guard checks are skipped (``torch.compiler.set_stance(skip_guard_eval_unsafe=True)``) for calls
  whose *signature* has been compiled before. The signature is the caller's Python switches (SAC's
  ``actor_step`` and ``target_step``, which select different graphs) and the shape and dtype of each
  batch tensor. A new signature runs with every guard, so Dynamo compiles its graph as usual; once
  two graphs exist, the guards that tell them apart still run under the stance. What the skip
  assumes, and the callers keep: the same parameter and optimizer-state tensors (updated in place;
  ``load_state_dict`` copies into them) and unchanged Python constants (learning rates, betas).

Measured on the bare SAC update (Hopper sizes, batch 256, 2 threads; ``benchmarks/sac_speed.py
--compiled-step``): about 7 % more updates/s than a plain ``torch.compile`` of the same function.

Each :class:`CompiledStep` compiles a private copy of its function's code object. Dynamo keeps
compiled graphs, and counts them against its recompile limit (8), per code object; a method's graphs
are specific to its agent (its guards match that agent's objects), so with one shared code object the
ninth agent built in a process (a test session, seeds run one after another) would exceed the limit
and fall back to eager. With its own copy an agent's graphs count against its own limit only and go
when the agent goes.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Hashable
from typing import Any

import torch


def batch_signature(batch: dict[str, torch.Tensor]) -> tuple:
    """The part of a batch a compiled graph depends on: each key with its tensor's shape and dtype."""
    return tuple((key, tuple(value.shape), value.dtype) for key, value in batch.items())


def private_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a function or bound method) running a copy of its code object (see the module docstring)."""
    func = getattr(fn, "__func__", fn)
    copy = types.FunctionType(func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__,
                              func.__closure__)  # fmt: skip
    copy.__kwdefaults__, copy.__qualname__ = func.__kwdefaults__, func.__qualname__
    return types.MethodType(copy, fn.__self__) if isinstance(fn, types.MethodType) else copy


class CompiledStep:
    """``torch.compile(fn, fullgraph=True)`` with inductor's C++ wrapper, called as
    ``step(signature, *args)``: guards are checked only for a signature not seen before."""

    def __init__(self, fn: Callable[..., Any], backend: Any):
        options = {"cpp_wrapper": True} if backend == "inductor" else None
        self.fn = torch.compile(private_code(fn), backend=backend, fullgraph=True, options=options)
        self.compiled: set[Hashable] = set()  # signatures whose graph exists

    def __call__(self, signature: Hashable, *args: Any) -> Any:
        if signature in self.compiled:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return self.fn(*args)
        out = self.fn(*args)  # every guard: compiles this signature's graph when it is new
        self.compiled.add(signature)
        return out
