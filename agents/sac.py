"""Soft Actor-Critic: the off-policy base that ERC and QARL extend.

Paper: Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905 (2018),
the version with a learned temperature. For a batch (s, a, r, s', d):

    y        = r + gamma (1 - d) [ min_k Qbar_k(s', a') - alpha log pi(a'|s') ],  a' ~ pi(.|s')
    L_Q      = 1/2 sum_k mean_b (Q_k(s, a) - y)^2
    L_pi     = mean_b [ alpha log pi(a~|s) - min_k Q_k(s, a~) ],                  a~ ~ pi(.|s)
    L_alpha  = -mean_b [ log alpha (log pi(a~|s) + H_target) ]
    Qbar    <- (1 - polyak) Qbar + polyak Q

The K critics are one :class:`~agents.engine.nets.QEnsemble` (one batched kernel per layer). The
actor step differentiates only with respect to the actor's parameters (``backward(inputs=...)``),
so no critic weight gradients are computed and then thrown away. ``policy_delay`` k runs the actor
and temperature step every k critic steps, ``target_every`` the Polyak step (TD3/ERC cadence).

Variants override one named method: :meth:`SAC.critic_loss` (ERC adds its regularizer there).

``agent.compile`` compiles the whole update as one graph (:meth:`SAC.functional_update`: gradients by
``torch.func``, Adam written out on the optimizers' own state, the two noise draws passed in so it
samples what eager samples); eager stays the default and the fallback (docs/algorithms/sac.md).

With prioritized replay (``train.prioritized``; Schaul et al., ICLR 2016, arXiv:1511.05952) the batch
carries importance weights w ``[B]``; the critic loss becomes
L_Q = 1/2 sum_k mean_b w_b (Q_k(s_b, a_b) - y_b)^2 and the update returns each row's TD error
``td_error [B]`` = mean_k |Q_k(s_b, a_b) - y_b| (detached) as its new priority.

Deviations from the reference: none in the update. (Prioritized replay, not in the paper, weights
only the critic loss: the actor and temperature losses are not TD losses and stay unweighted; a
row's priority uses the mean of its K critics' absolute TD errors.) Hyperparameters follow the paper's Table 1 and
stable-baselines3's defaults (they agree: lr 3e-4, batch 256, gamma 0.99, polyak 0.005, 256x256,
target entropy -|A|); the Pendulum preset takes rl-zoo3's learning rate 1e-3.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from agents.engine.compiled import CompiledStep, batch_signature, private_code
from agents.engine.config import AgentConfig, EnvConfig, RunConfig, check_finite, doc
from agents.engine.family import Family
from agents.engine.loops import TD_ERROR, OffPolicyConfig
from agents.engine.losses import polyak_update, td_target
from agents.engine.nets import ACTIVATIONS, QEnsemble, SquashedGaussianActor
from envs.base import BoxSpec

COMPILE_BACKEND = "inductor"  # agent.compile's torch.compile backend (tests trace with "aot_eager": no C++ build)
TEMPERATURES = ("learned", "fixed", "per-sample")  # SACConfig.temperature: where alpha comes from


def stateless_call(module: torch.nn.Module, params: dict[str, torch.Tensor], args: tuple):
    """``module(*args)`` with its parameters replaced by ``params`` (``torch.func.functional_call``);
    the suite's networks tie no weights, so the per-call search for tied ones is skipped."""
    return torch.func.functional_call(module, params, args, tie_weights=False)


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    """SAC hyperparameters (defaults: Haarnoja et al. 2018, Table 1)."""

    hidden: tuple[int, ...] = doc("hidden layer widths of actor and critics", (256, 256), ge=1, min_items=1)
    activation: str = doc("hidden activation", "relu", choices=ACTIVATIONS)
    critics: int = doc("number of Q critics in the ensemble (min over them forms the target)", 2, ge=1)
    actor_lr: float = doc("actor Adam learning rate", 3e-4, gt=0)
    critic_lr: float = doc("critic Adam learning rate", 3e-4, gt=0)
    temperature_lr: float = doc("temperature (log alpha) Adam learning rate", 3e-4, gt=0)
    gamma: float = doc("discount factor", 0.99, ge=0, le=1)
    polyak: float = doc("target step size: target <- (1 - polyak) target + polyak online", 0.005, gt=0, le=1)
    initial_temperature: float = doc("initial entropy temperature alpha", 1.0, gt=0)
    temperature: str = doc(
        "entropy temperature alpha: 'learned' (towards the target entropy), 'fixed' (initial_temperature), "
        "'per-sample' (each sample's own alpha, read from the batch's 'temperature' field)",
        "learned",
        choices=TEMPERATURES,
    )
    target_entropy: float | None = doc("entropy target; None means -action_dim", None, check=check_finite)
    policy_delay: int = doc("actor and temperature step every k critic steps", 1, ge=1)
    target_every: int = doc("Polyak target step every k critic steps", 1, ge=1)
    actor_update_after_steps: int = doc(
        "no actor / temperature step before this step (the loop's clock: env steps; in QARL's phases the "
        "learner's own transitions)",
        0,
        ge=0,
    )
    fused_adam: bool = doc("use the fused Adam kernel (same math, fewer kernel launches)", True)
    compile: bool = doc(
        "torch.compile the whole update (critic, actor and temperature steps, both Adams, Polyak) as one "
        "graph (with --batched, the whole stacked step of all seeds); a variant with its own critic_loss (ERC) "
        "compiles its objectives only; eager with a notice where compiling fails (slow start; see "
        "docs/algorithms/sac.md for when it pays)",
        False,
    )
    RENAMED = {"learn_temperature": ("temperature", {True: "learned", False: "fixed"})}


class SAC:
    """SAC agent; see the module docstring for the losses."""

    def __init__(self, obs_spec: BoxSpec, action_spec: BoxSpec, config: SACConfig, device: torch.device | str = "cpu"):
        if not isinstance(action_spec, BoxSpec):
            raise ValueError("SAC needs a continuous (Box) action space; use dqn for discrete actions")
        self.config = config
        self.device = torch.device(device)
        obs_dim, action_dim = obs_spec.dim, action_spec.dim
        self.action_shape, self.action_dim = action_spec.shape, action_dim
        self.actor = SquashedGaussianActor(obs_dim, action_dim, config.hidden, config.activation).to(self.device)
        self.critic = QEnsemble(obs_dim, action_dim, config.hidden, config.critics, config.activation).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # Parameter lists walked once: the Polyak step runs every update (load_state_dict copies in
        # place, so these stay the live tensors).
        self._critic_params = list(self.critic.parameters())
        self._critic_target_params = list(self.critic_target.parameters())
        self.log_temperature = (
            torch.tensor(float(config.initial_temperature), device=self.device).log().requires_grad_()
        )
        self.target_entropy = float(-action_dim if config.target_entropy is None else config.target_entropy)
        adam = {"fused": True} if config.fused_adam else {}
        self.critic_optimizer = torch.optim.Adam(self._critic_params, lr=config.critic_lr, **adam)
        # Actor and temperature share one optimizer (two parameter groups, their own learning rates)
        # and one backward pass: their losses touch disjoint parameters, so the step is the same as
        # with two optimizers, at half the Python overhead.
        self.actor_params = list(self.actor.parameters())
        groups = [{"params": self.actor_params, "lr": config.actor_lr}]
        if config.temperature == "learned":
            groups.append({"params": [self.log_temperature], "lr": config.temperature_lr})
        self.actor_optimizer = torch.optim.Adam(groups, **adam)
        self._actor_step_inputs = [p for group in groups for p in group["params"]]
        self.updates = 0  # critic steps taken; drives the delayed cadences
        self._in_seed_stack = False  # set by SeedStack: the tensors are views of K seeds' stacked ones
        # agent.compile: SAC's own losses compile as one whole step (:meth:`functional_update`); a
        # variant whose critic_loss reads the live parameters (ERC's regularizer) compiles its two
        # objectives, and the optimizer steps stay eager (fused Adam is one kernel per optimizer).
        whole = config.compile and type(self).critic_loss is SAC.critic_loss
        compile_fn = (lambda fn: torch.compile(private_code(fn))) if config.compile and not whole else (lambda fn: fn)
        self._critic_objective = compile_fn(self.critic_objective)
        self._actor_objective = compile_fn(self.actor_objective)
        self._compiled_update = CompiledStep(self.functional_update, COMPILE_BACKEND) if whole else None

    # ---- acting -------------------------------------------------------------------------------

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True):
        obs = obs.reshape(obs.shape[0], -1)
        action = self.actor.sample(obs) if explore else self.actor.deterministic(obs)
        return action.reshape(-1, *self.action_shape), state

    # ---- learning -----------------------------------------------------------------------------

    @property
    def temperature(self) -> torch.Tensor:
        """The scalar alpha of the 'learned' and 'fixed' modes (0-dim)."""
        return self.log_temperature.detach().exp()

    def batch_temperature(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """alpha for the losses: the scalar (0-dim), or each sample's own ``batch["temperature"] [B]``
        in the 'per-sample' mode (QARL's adversary: its target and actor loss use each episode's alpha)."""
        if self.config.temperature == "per-sample":
            return batch["temperature"]
        return self.temperature

    @torch.no_grad()
    def critic_target_value(self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None) -> torch.Tensor:
        """y = r + gamma (1 - terminated) (min_k Qbar_k(s', a') - alpha log pi(a'|s')), shape [B]
        (``noise``: the draw for a', default fresh)."""
        next_action, next_log_prob = self.actor(batch["next_obs"], noise)
        next_q = self.critic_target(batch["next_obs"], next_action).min(0).values
        soft_value = next_q - self.batch_temperature(batch) * next_log_prob
        return td_target(batch["reward"], batch["terminated"], soft_value, self.config.gamma)

    def critic_loss(self, q: torch.Tensor, target: torch.Tensor, batch: dict[str, torch.Tensor]):
        """L_Q = 1/2 sum_k mean_b (Q_k - y)^2 for q ``[K, B]`` and target ``[B]``; with prioritized
        replay L_Q = 1/2 sum_k mean_b w_b (Q_k - y)^2 for ``batch["weights"] [B]``.

        Returns ``(loss, metrics)``; a prioritized batch's metrics add ``td_error [B]`` =
        mean_k |Q_k - y| (detached), the rows' new priorities. Variants (ERC) override this to add terms.
        Written over the trailing dimensions, so a seed stack's ``q [S, K, B]``, ``target [S, B]`` give
        each seed's loss ``[S]`` (:class:`SeedStack`).
        """
        td_error = q - target.unsqueeze(-2)  # [K, B]
        weights = batch.get("weights")
        q_mean = q.detach().mean((-2, -1))
        if weights is None:  # uniform replay: the original reduction, bit for bit
            loss = 0.5 * td_error.pow(2).mean(-1).sum(-1)
            return loss, {"loss/critic": loss.detach(), "train/q_mean": q_mean}
        loss = 0.5 * (weights.unsqueeze(-2) * td_error.pow(2)).mean(-1).sum(-1)
        metrics = {"loss/critic": loss.detach(), "train/q_mean": q_mean}
        metrics[TD_ERROR] = td_error.detach().abs().mean(-2)  # [B]
        return loss, metrics

    def critic_objective(self, batch: dict[str, torch.Tensor]):
        """Target, critic forward and :meth:`critic_loss`: ``(loss, metrics)`` (compiled as one graph)."""
        target = self.critic_target_value(batch)
        q = self.critic(batch["obs"], batch["action"])  # [K, B]
        return self.critic_loss(q, target, batch)

    def actor_objective(self, batch: dict[str, torch.Tensor]):
        """``(L_pi, log pi(a~|s) [B])`` with a~ reparameterised from the current actor."""
        action, log_prob = self.actor(batch["obs"])
        q = self.critic(batch["obs"], action).min(0).values
        return (self.batch_temperature(batch) * log_prob - q).mean(), log_prob

    def update_critic(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, metrics = self._critic_objective(batch)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return metrics

    def update_actor_and_temperature(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        actor_loss, log_prob = self._actor_objective(batch)
        metrics = {"loss/actor": actor_loss.detach(), "train/entropy": -log_prob.detach().mean()}
        loss = actor_loss
        if self.config.temperature == "learned":
            temperature_loss = -(self.log_temperature * (log_prob.detach() + self.target_entropy)).mean()
            metrics["loss/temperature"] = temperature_loss.detach()
            loss = actor_loss + temperature_loss  # disjoint parameters: each gets its own loss's gradient
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self._actor_step_inputs)  # critic weights get no gradient at all
        self.actor_optimizer.step()
        metrics["train/temperature"] = self.batch_temperature(batch).mean()
        return metrics

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        self.updates += 1
        actor_step = self.updates % self.config.policy_delay == 0 and step >= self.config.actor_update_after_steps
        target_step = self.updates % self.config.target_every == 0
        if self._compiled_update is not None:
            metrics = self._compiled_step(batch, actor_step, target_step)
            if metrics is not None:
                return metrics
        metrics = self.update_critic(batch)
        if actor_step:
            metrics.update(self.update_actor_and_temperature(batch))
        if target_step:
            polyak_update(self._critic_params, self._critic_target_params, self.config.polyak)
        return metrics

    # ---- the compiled step (agent.compile) ----------------------------------------------------

    def _compiled_step(self, batch: dict[str, torch.Tensor], actor_step: bool, target_step: bool):
        """One update through the compiled :meth:`functional_update`; None (and eager from now on, with a
        one-line notice) where compiling fails. Dynamo compiles a graph before running it, so a failed
        compile has changed no parameter, and the RNG is put back."""
        obs = batch["obs"]
        # A failed compile hands eager the RNG as it found it (the noise below is drawn first).
        rng = torch.get_rng_state() if obs.device.type == "cpu" else torch.cuda.get_rng_state(obs.device)
        # The two reparameterisation draws, in eager order (a' for the target, then a~ for the actor):
        # drawn outside the graph from torch's generator, so the compiled step samples what eager would.
        noise_next = torch.randn(obs.shape[0], self.action_dim, device=obs.device, dtype=obs.dtype)
        noise_pi = torch.randn_like(noise_next) if actor_step else None
        try:
            with torch.no_grad():
                critic_state, actor_state = (
                    self._adam_state(self.critic_optimizer),
                    self._adam_state(self.actor_optimizer),
                )

                def corrections_of(state, optimizer):  # per group, computed before the graph (_bias_corrections)
                    return [self._bias_corrections(rows, group) for rows, group in zip(state, optimizer.param_groups)]

                corrections = (
                    corrections_of(critic_state, self.critic_optimizer),
                    corrections_of(actor_state, self.actor_optimizer) if actor_step else None,
                )
                metrics = self._compiled_update(
                    (actor_step, target_step, batch_signature(batch)),
                    batch, noise_next, noise_pi, critic_state, actor_state, corrections, actor_step, target_step,
                )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - any compiler failure (no C++ toolchain, unsupported op)
            cause = getattr(e, "inner_exception", None) or e  # Dynamo's wrapper names the compiler's error
            reason = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:200]}"
            print(f"notice: agent.compile unavailable ({reason}); SAC updates run eager")
            self._compiled_update = None
            if obs.device.type == "cpu":
                torch.set_rng_state(rng)
            else:
                torch.cuda.set_rng_state(rng, obs.device)
            return None
        return metrics

    @staticmethod
    def _adam_state(optimizer: torch.optim.Adam) -> list[list[tuple[torch.Tensor, ...]]]:
        """Per group, per parameter ``(param, step, exp_avg, exp_avg_sq)``: torch.optim.Adam's own state
        tensors (created as Adam creates them), so checkpoints and ``--resume`` are the same either way."""
        groups = []
        for group in optimizer.param_groups:
            rows = []
            for p in group["params"]:
                state = optimizer.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                rows.append((p.detach(), state["step"], state["exp_avg"], state["exp_avg_sq"]))
            groups.append(rows)
        return groups

    @staticmethod
    def _bias_corrections(rows, group: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Adam's bias corrections for the group's next step t + 1: ``(1 - beta1^(t+1),
        sqrt(1 - beta2^(t+1)))``, shaped as the first row's step count (0-dim; ``[K, 1, ...]`` in a seed
        stack). A group's rows step together, so their counts are equal and the first row's is every
        row's (a seed stack checks it; Adam's counts for parameters that always get a gradient are).

        The compiled steps compute these before the graph and pass them in: inside the graph inductor
        would inline ``beta^t`` into every fused Adam loop, a scalar ``powf`` per 16 elements, which once
        ``beta1^t`` underflows takes libm's slow path (7 % of a compiled Hopper-sized SAC update)."""
        if not rows:
            return None
        beta1, beta2 = group["betas"]
        step = rows[0][1] + 1
        return 1 - torch.pow(beta1, step), (1 - torch.pow(beta2, step)).sqrt()

    @staticmethod
    def _adam_step(grads: list[torch.Tensor], rows, group: dict, corrections=None) -> None:
        """torch.optim.Adam's update (no weight decay, no amsgrad) on ``rows`` = (param, step, m, v), as
        ``torch._foreach_*`` ops over all rows at once: the same elementwise arithmetic in the same order
        as one tensor at a time, with one dispatch per op for all parameters. ``corrections``: the
        group's :meth:`_bias_corrections` (computed here when not given)."""
        if not rows:
            return
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        bias_correction1, bias_correction2_sqrt = corrections or SAC._bias_corrections(rows, group)
        params, steps, exp_avgs, exp_avg_sqs = (list(column) for column in zip(*rows))
        bias_correction1 = [bias_correction1.reshape(step.shape) for step in steps]  # views: each row's shape
        bias_correction2_sqrt = [bias_correction2_sqrt.reshape(step.shape) for step in steps]
        grads = list(grads)
        torch._foreach_add_(steps, 1)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_mul_(denom, bias_correction1)
        torch._foreach_div_(denom, lr)
        torch._foreach_addcdiv_(params, exp_avgs, denom, value=-1.0)

    @staticmethod
    def _fused_adam_step(grads: list[torch.Tensor], rows, group: dict) -> None:
        """:meth:`_adam_step` as ``torch.optim.Adam(fused=True)`` computes it: the step counts incremented,
        then one fused kernel for every row. The kernel reads one step count per row, so each row's
        ``step`` must hold a single value (a seed stack's rows do: its members step in lockstep, and
        :class:`SeedStack` checks that they start equal)."""
        if not rows:
            return
        beta1, beta2 = group["betas"]
        params, steps, exp_avgs, exp_avg_sqs = (list(column) for column in zip(*rows))
        # The kernel walks each tensor's memory in order, so a gradient must be laid out as its
        # parameter (a stacked weight read transposed, ``weight.mT``, gets a transposed gradient).
        grads = [g if g.stride() == p.stride() else g.contiguous() for g, p in zip(grads, params)]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, grads, exp_avgs, exp_avg_sqs, [], [step.reshape(-1)[0] for step in steps],
            lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], amsgrad=False,
            maximize=False,
        )  # fmt: skip

    # The update's three objectives as functions of the parameters they read, passed explicitly (dicts
    # of ``named_parameters`` names -> tensors, through ``functional_call``): the compiled single-seed
    # step (:meth:`functional_update`) calls them with this agent's own tensors, the seed-batched
    # step (:class:`SeedStack`) with K seeds' tensors stacked on a leading dimension (parameters
    # ``[K, ...]``, batch ``[K, B, ...]``, log alpha ``[K, 1]``): the networks run stacked (one batched
    # matmul per layer, agents/engine/nets.py) and every reduction is over trailing dimensions, so the
    # same code gives each seed's loss ``[K]``.

    def target_of(self, actor_params, target_params, log_temperature, batch, noise_next) -> torch.Tensor:
        """:meth:`critic_target_value` of the given actor, target critics and log alpha: y ``[B]``."""
        next_action, next_log_prob = stateless_call(self.actor, actor_params, (batch["next_obs"], noise_next))
        next_q = stateless_call(self.critic_target, target_params, (batch["next_obs"], next_action)).min(-2).values
        per_sample = self.config.temperature == "per-sample"
        alpha = batch["temperature"] if per_sample else log_temperature.detach().exp()
        return td_target(batch["reward"], batch["terminated"], next_q - alpha * next_log_prob, self.config.gamma)

    def critic_objective_of(self, critic_params, target, batch):
        """:meth:`critic_loss` of the given critics against ``target``: ``(loss, metrics)``."""
        q = stateless_call(self.critic, critic_params, (batch["obs"], batch["action"]))
        return self.critic_loss(q, target, batch)

    def actor_objective_of(self, actor_params, log_temperature, critic_params, batch, noise_pi):
        """L_pi (+ L_alpha when learned) of the given actor and log alpha against the given critics:
        ``(loss, aux metrics)``; the two losses touch disjoint parameters, as in the eager step."""
        action, log_prob = stateless_call(self.actor, actor_params, (batch["obs"], noise_pi))
        q = stateless_call(self.critic, critic_params, (batch["obs"], action)).min(-2).values
        per_sample = self.config.temperature == "per-sample"
        alpha = batch["temperature"] if per_sample else log_temperature.detach().exp()
        actor_loss = (alpha * log_prob - q).mean(-1)
        loss, aux = actor_loss, {"loss/actor": actor_loss, "train/entropy": -log_prob.mean(-1)}
        if self.config.temperature == "learned":
            temperature_loss = -(log_temperature * (log_prob.detach() + self.target_entropy)).mean(-1)
            aux["loss/temperature"] = temperature_loss
            loss = actor_loss + temperature_loss
        return loss, aux

    def functional_update(
        self, batch, noise_next, noise_pi, critic_state, actor_state, corrections, actor_step: bool, target_step: bool
    ) -> dict[str, torch.Tensor]:
        """The whole SAC update as one function of tensors (run under ``no_grad``; gradients by
        ``torch.func.grad``), compiled by ``agent.compile``: critic loss and Adam step, actor and
        temperature loss and Adam step (``actor_step``), Polyak (``target_step``). The same math as
        :meth:`update`'s eager path, in the same order; the losses agree to float rounding.
        ``corrections``: Adam's bias corrections per optimizer (critic, actor), per parameter group
        (:meth:`_bias_corrections`; the actor's None without ``actor_step``)."""
        from torch.func import grad_and_value

        (critic_rows,) = critic_state
        names = [name for name, _ in self.critic.named_parameters()]
        critic_params = {name: row[0] for name, row in zip(names, critic_rows)}
        actor_names = [name for name, _ in self.actor.named_parameters()]
        # Every tensor reaches the graph once: the optimizer rows' views of the parameters, never the
        # parameters beside them (two inputs sharing memory, one of them mutated, send every call through
        # AOTAutograd's synthetic-base path: views rebuilt and copied back at run time).
        live_actor = {name: row[0] for name, row in zip(actor_names, actor_state[0])}
        learned = self.config.temperature == "learned"
        log_temperature = actor_state[1][0][0] if learned else self.log_temperature.detach()
        target_params = {name: p for name, p in self.critic_target.named_parameters()}
        target = self.target_of(live_actor, target_params, log_temperature, batch, noise_next)
        grads, (_, metrics) = grad_and_value(self.critic_objective_of, has_aux=True)(critic_params, target, batch)
        critic_corrections, actor_corrections = corrections  # Adam's bias corrections, per group
        self._adam_step(
            [grads[name] for name in names], critic_rows, self.critic_optimizer.param_groups[0], critic_corrections[0]
        )
        metrics = dict(metrics)
        if actor_step:
            (actor_grads, temperature_grad), (_, aux) = grad_and_value(
                self.actor_objective_of, argnums=(0, 1), has_aux=True
            )(live_actor, log_temperature, critic_params, batch, noise_pi)
            groups = self.actor_optimizer.param_groups
            self._adam_step(
                [actor_grads[name] for name in actor_names], actor_state[0], groups[0], actor_corrections[0]
            )
            if learned:
                self._adam_step([temperature_grad], actor_state[1], groups[1], actor_corrections[1])
            metrics.update(aux)
            per_sample = self.config.temperature == "per-sample"
            metrics["train/temperature"] = batch["temperature"].mean() if per_sample else log_temperature.exp()
        if target_step:
            torch._foreach_lerp_(self._critic_target_params, [row[0] for row in critic_rows], self.config.polyak)
        return metrics

    # ---- persistence --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_temperature": self.log_temperature.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),  # actor and temperature groups
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "updates": self.updates,
        }
        # a member of a SeedStack holds views of the K seeds' tensors: its own rows only
        return _own_storage(state) if self._in_seed_stack else state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.updates = int(state["updates"])


def _own_storage(tree: Any) -> Any:
    """``tree`` with every tensor that is a view into a larger storage cloned: a member of a
    :class:`SeedStack` holds views of the K seeds' stacked tensors, and ``torch.save`` of a view writes
    its whole storage (all K seeds); cloned, a member's checkpoint holds its own seed only."""
    if isinstance(tree, torch.Tensor):
        size = tree.untyped_storage().nbytes()
        return tree.clone() if size > tree.numel() * tree.element_size() else tree
    if isinstance(tree, dict):
        return {key: _own_storage(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_own_storage(value) for value in tree]
    return tree


class SeedStack:
    """K ordinary :class:`SAC` agents (one per seed, same config) updated as one: seed-batched training.

    The stacked tensors ``[K, ...]`` are the source of truth: every parameter, target parameter, log
    alpha and Adam moment of member k is the view ``stacked[k]`` (``p.data = stacked[k]``; the Adam
    state entries are replaced by views, created eagerly as :meth:`SAC._adam_state` does). So a
    member's ``act``, evaluation, ``state_dict`` and checkpoint are those of an ordinary SAC agent, and
    a run directory written this way resumes as an ordinary run. Build the stack after the members
    have been restored from their checkpoints (``load_state_dict`` copies parameters in place but the
    optimizer's replaces its state tensors; stacking then gathers whatever the members hold).

    One :meth:`update` is K SAC updates: the objectives :meth:`SAC.target_of`,
    :meth:`SAC.critic_objective_of` and :meth:`SAC.actor_objective_of` (the same functions the
    compiled single-seed step uses) run once on the stacked tensors (parameters ``[K, ...]``, batch
    ``[K, B, ...]``; the networks' layers take stacked weights, one batched matmul per layer for all K
    seeds, and the losses reduce over trailing dimensions, so they return every seed's loss ``[K]``; no
    ``vmap``, whose per-op dispatch cost more than it saved at 128x128), differentiated by one
    autograd backward of the summed losses (:meth:`_gradients`), in eager SAC's order: critic step,
    actor and temperature step against the updated critics, Polyak. Adam is elementwise, so
    :meth:`SAC._adam_step` on the stacked tensors (its step count broadcast per seed) is K independent
    Adams; all members take the same steps in
    lockstep (one ``updates`` counter, the same ``policy_delay`` / ``target_every`` /
    ``actor_update_after_steps`` cadence). The two reparameterisation draws are made before the step
    from torch's generator, ``[K, B, A]`` each, in eager order (a' for the targets, then a~).
    ``agent.compile`` compiles the whole stacked step as one graph (:meth:`_functional_step`:
    gradients by ``torch.func``); where compiling fails, one notice and eager.

    Only plain SAC with a scalar temperature ('learned' or 'fixed') is supported: a variant with its
    own losses or update (ERC), or the per-sample temperature, is refused with a one-line ValueError.
    """

    SUPPORTED = "seed-batched training supports plain SAC (algo sac, agent.temperature learned or fixed)"

    def __init__(self, members: list[SAC]):
        members = list(members)
        if not members:
            raise ValueError("SeedStack needs at least one agent")
        for member in members:
            plain = isinstance(member, SAC) and all(
                getattr(type(member), name) is getattr(SAC, name)
                for name in ("critic_loss", "critic_objective", "actor_objective", "update", "update_critic")
            )
            if not plain:
                raise ValueError(f"{self.SUPPORTED}; {type(member).__name__} is not plain SAC")
            if member.config.temperature == "per-sample":
                raise ValueError(f"{self.SUPPORTED}; not agent.temperature=per-sample")
            if member.config != members[0].config:
                raise ValueError("seed-batched members must share one agent config")
        if len({member.updates for member in members}) > 1:
            raise ValueError("seed-batched members must be in lockstep (the same number of updates taken)")
        self.members = members
        self.template = members[0]  # the modules functional_call runs (every member has the same shapes)
        first = self.template
        self.critic_names = [name for name, _ in first.critic.named_parameters()]
        self.actor_names = [name for name, _ in first.actor.named_parameters()]
        # Adam state as torch.optim.Adam creates it, then every tensor stacked and re-pointed.
        for member in members:
            SAC._adam_state(member.critic_optimizer)
            SAC._adam_state(member.actor_optimizer)
        self.critic_rows = self._stack_group([m.critic_optimizer for m in members], 0)
        self.actor_rows = self._stack_group([m.actor_optimizer for m in members], 0)
        learned = first.config.temperature == "learned"
        self.temperature_rows = self._stack_group([m.actor_optimizer for m in members], 1) if learned else None
        if learned:
            self.log_temperature = self.temperature_rows[0][0]
        else:  # fixed: no optimizer holds it, but the losses read it per seed
            self.log_temperature = self._stack_tensors([m.log_temperature for m in members])
        self.targets = [self._stack_tensors(list(ps)) for ps in zip(*[m._critic_target_params for m in members])]
        self.critic_params = [row[0] for row in self.critic_rows]
        for member in members:
            member._in_seed_stack = True  # its state_dict clones the views (see _own_storage)
        # agent.compile: the whole stacked step as one graph (eager with a notice where compiling fails)
        self._compiled_step = CompiledStep(self._functional_step, COMPILE_BACKEND) if first.config.compile else None

    @staticmethod
    def _stack_tensors(tensors: list[torch.Tensor]) -> torch.Tensor:
        """``torch.stack`` of the members' tensors; each member's tensor now views its row."""
        stacked = torch.stack([t.detach() for t in tensors])
        for k, tensor in enumerate(tensors):
            tensor.data = stacked[k]
        return stacked

    def _stack_group(self, optimizers: list[torch.optim.Adam], group: int) -> list[tuple[torch.Tensor, ...]]:
        """Stack parameter group ``group`` of the members' optimizers and its Adam state: rows
        ``(param, step, exp_avg, exp_avg_sq)`` of stacked tensors for :meth:`SAC._adam_step`, the step
        count ``[K]`` viewed as ``[K, 1, ...]`` so it broadcasts over each seed's parameter."""
        rows = []
        params_by_member = [opt.param_groups[group]["params"] for opt in optimizers]
        for params in zip(*params_by_member):
            states = [opt.state[p] for opt, p in zip(optimizers, params)]
            stacked = {}
            for key in ("step", "exp_avg", "exp_avg_sq"):
                stacked[key] = torch.stack([state[key] for state in states])
                for k, state in enumerate(states):
                    state[key] = stacked[key][k]
            if not bool((stacked["step"] == stacked["step"].reshape(-1)[0]).all()):  # one count per row (fused Adam)
                raise ValueError("seed-batched members' optimizers must have taken the same number of steps")
            param = self._stack_tensors(list(params))
            step = stacked["step"].view(-1, *([1] * (param.dim() - 1)))
            rows.append((param, step, stacked["exp_avg"], stacked["exp_avg_sq"]))
        return rows

    @torch.no_grad()
    def act(self, obs: torch.Tensor, *, step: int) -> torch.Tensor:
        """Every member's exploring action for its own observations, ``obs [K, N, ...]`` -> ``[K, N, A...]``:
        :meth:`SAC.act` (``explore=True``) of the K actors as one stacked network, one draw ``[K, N, A]``
        from torch's generator (as K separate calls would make K draws of ``[N, A]``)."""
        actor = dict(zip(self.actor_names, [row[0] for row in self.actor_rows]))
        action, _ = stateless_call(self.template.actor, actor, (obs.reshape(*obs.shape[:2], -1),))
        return action.reshape(*obs.shape[:2], *self.template.action_shape)

    def update(self, batches: list[dict[str, torch.Tensor]], *, step: int) -> list[dict[str, torch.Tensor]]:
        """One SAC update of every member, member k on ``batches[k]``; returns each member's metrics
        (0-dim tensors, as :meth:`SAC.update` returns them)."""
        if len(batches) != len(self.members):
            raise ValueError(f"{len(batches)} batches for {len(self.members)} seeds")
        first, cfg = self.template, self.template.config
        for member in self.members:
            member.updates += 1
        actor_step = first.updates % cfg.policy_delay == 0 and step >= cfg.actor_update_after_steps
        target_step = first.updates % cfg.target_every == 0
        batch = {key: torch.stack([b[key] for b in batches]) for key in batches[0]}  # [K, B, ...]
        obs = batch["obs"]
        noise_next = torch.randn(*obs.shape[:2], first.action_dim, device=obs.device, dtype=obs.dtype)
        noise_pi = torch.randn_like(noise_next) if actor_step else None
        metrics = None
        if self._compiled_step is not None:
            try:
                with torch.no_grad():
                    signature = (actor_step, target_step, batch_signature(batch))
                    learned = self.temperature_rows is not None
                    corrections = (  # computed before the graph (see SAC._bias_corrections)
                        SAC._bias_corrections(self.critic_rows, self._group(0, 0)),
                        SAC._bias_corrections(self.actor_rows, self._group(1, 0)) if actor_step else None,
                        SAC._bias_corrections(self.temperature_rows, self._group(1, 1))
                        if actor_step and learned
                        else None,
                    )
                    metrics = self._compiled_step(
                        signature, batch, noise_next, noise_pi, corrections, actor_step, target_step
                    )
            except Exception as e:  # noqa: BLE001 - any compiler failure (no C++ toolchain, unsupported op)
                cause = getattr(e, "inner_exception", None) or e
                reason = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:200]}"
                print(f"notice: agent.compile unavailable for the stacked update ({reason}); it runs eager")
                self._compiled_step = None  # Dynamo compiles before it runs: nothing was changed
        if metrics is None:
            adam = SAC._fused_adam_step if cfg.fused_adam else SAC._adam_step
            metrics = self._step(batch, noise_next, noise_pi, actor_step, target_step, self._gradients, adam)
        return [{key: value[k] for key, value in metrics.items()} for k in range(len(self.members))]

    def _functional_step(self, batch, noise_next, noise_pi, corrections, actor_step: bool, target_step: bool):
        """:meth:`_step` with gradients by ``torch.func`` (what ``agent.compile`` compiles as one graph), Adam's
        bias corrections ``corrections`` (critic, actor, temperature) computed before it."""
        return self._step(
            batch, noise_next, noise_pi, actor_step, target_step, self._func_gradients, SAC._adam_step, corrections
        )

    def _step(
        self, batch, noise_next, noise_pi, actor_step: bool, target_step: bool, gradients, adam, corrections=None
    ):
        """The stacked update on the stacked batch and noise: critic step, actor and temperature step
        (``actor_step``), Polyak (``target_step``); all K seeds' metrics ``[K]``. ``gradients``:
        :meth:`_gradients` (eager) or :meth:`_func_gradients` (compiled); ``adam``: the optimizer step,
        :meth:`SAC._fused_adam_step` (eager with ``agent.fused_adam``, one kernel per parameter group, as
        each member's own optimizer) or :meth:`SAC._adam_step` (``_foreach`` ops, which a compiled graph
        fuses); ``corrections``: the :meth:`SAC._adam_step` bias corrections of the critic, actor and
        temperature groups, computed before a compiled graph (None: the optimizer step's own)."""
        first, cfg = self.template, self.template.config

        def precomputed(group: int) -> tuple:  # the extra argument for adam: the group's corrections, if given
            return () if corrections is None else (corrections[group],)

        critic = dict(zip(self.critic_names, self.critic_params))
        actor = dict(zip(self.actor_names, [row[0] for row in self.actor_rows]))
        log_temperature = self.log_temperature.unsqueeze(-1)  # [K, 1]: broadcasts over each seed's batch
        with torch.no_grad():
            target = first.target_of(actor, dict(zip(self.critic_names, self.targets)), log_temperature, batch,
                                     noise_next)  # fmt: skip
        names = self.critic_names
        (grads,), metrics = gradients(
            first.critic_objective_of, [self.critic_params], lambda leaves: (dict(zip(names, leaves[0])), target, batch)
        )
        with torch.no_grad():
            adam(grads, self.critic_rows, self._group(0, 0), *precomputed(0))
        if actor_step:
            learned = self.temperature_rows is not None
            actor_params = [row[0] for row in self.actor_rows]

            def arguments(leaves):
                alpha = leaves[1][0] if learned else self.log_temperature
                return dict(zip(self.actor_names, leaves[0])), alpha.unsqueeze(-1), critic, batch, noise_pi

            (actor_grads, *temperature_grad), aux = gradients(
                first.actor_objective_of,
                [actor_params, [self.log_temperature]] if learned else [actor_params],
                arguments,
            )
            with torch.no_grad():
                adam(actor_grads, self.actor_rows, self._group(1, 0), *precomputed(1))
                if learned:
                    adam(temperature_grad[0], self.temperature_rows, self._group(1, 1), *precomputed(2))
            metrics.update(aux)
            metrics["train/temperature"] = self.log_temperature.exp()
        if target_step:
            with torch.no_grad():
                torch._foreach_lerp_(self.targets, self.critic_params, cfg.polyak)
        return metrics

    @staticmethod
    def _gradients(objective, param_groups: list[list[torch.Tensor]], arguments):
        """The per-seed gradients of ``objective(*arguments(leaves))`` with respect to each group of
        stacked parameters: run on the stacked tensors it gives every seed's loss ``[K]`` (see
        :meth:`SAC.target_of`), and one backward of their sum gives each row its own seed's gradient
        (no op of the stacked forward mixes rows, so row k's gradient is dL_k/d(row k) exactly).
        Returns ``(grads per group, aux metrics detached)``."""
        leaf_groups = [[p.detach().requires_grad_() for p in group] for group in param_groups]
        with torch.enable_grad():
            loss, aux = objective(*arguments(leaf_groups))
            leaves = [leaf for group in leaf_groups for leaf in group]
            flat = torch.autograd.grad(loss.sum(), leaves)
        grads, start = [], 0
        for group in leaf_groups:
            grads.append(list(flat[start : start + len(group)]))
            start += len(group)
        return grads, {key: value.detach() for key, value in aux.items()}

    @staticmethod
    def _func_gradients(objective, param_groups: list[list[torch.Tensor]], arguments):
        """:meth:`_gradients` by ``torch.func.grad_and_value`` (traceable by ``torch.compile``)."""
        from torch.func import grad_and_value

        def summed(*groups):
            loss, aux = objective(*arguments(groups))
            return loss.sum(), {key: value.detach() for key, value in aux.items()}

        grads, (_, aux) = grad_and_value(summed, argnums=tuple(range(len(param_groups))), has_aux=True)(
            *[[p.detach() for p in group] for group in param_groups]
        )
        return [list(group) for group in grads], aux

    def _group(self, optimizer: int, group: int) -> dict:
        """Learning rate, betas and eps of a parameter group (the same for every member)."""
        opt = (self.template.critic_optimizer, self.template.actor_optimizer)[optimizer]
        return opt.param_groups[group]


def _mujoco(env_id: str, **train: Any) -> RunConfig:
    """SAC on a MuJoCo v5 task: paper / stable-baselines3 settings, 10k random warm-up steps."""
    return RunConfig(
        algo="sac",
        env=EnvConfig(id=env_id),
        train=OffPolicyConfig(**{"total_steps": 1_000_000, "update_after_steps": 10_000, **train}),
        agent=SACConfig(),
    )


PRESETS: dict[str, RunConfig] = {
    # The default: a few minutes on 2 cores. lr 1e-3 from rl-zoo3's Pendulum-v1 SAC hyperparameters.
    "sac": RunConfig(
        algo="sac",
        env=EnvConfig(id="Pendulum-v1"),
        train=OffPolicyConfig(total_steps=20_000, update_after_steps=1_000, eval_every=2_000, checkpoint_every=5_000),
        agent=SACConfig(actor_lr=1e-3, critic_lr=1e-3, temperature_lr=1e-3),
    ),
    "sac/hopper": _mujoco("Hopper-v5"),
    "sac/halfcheetah": _mujoco("HalfCheetah-v5"),
    "sac/walker2d": _mujoco("Walker2d-v5"),
    "sac/ant": _mujoco("Ant-v5"),
    "sac/inverted-pendulum": _mujoco("InvertedPendulum-v5", total_steps=100_000),
}
PRESETS["sac/pendulum"] = PRESETS["sac"]


def build(config: RunConfig, obs_spec, action_spec, device) -> SAC:
    return SAC(obs_spec, action_spec, config.agent, device)


FAMILY = Family(presets=PRESETS, build_agent=build, stack_seeds=SeedStack)

__all__ = ["FAMILY", "SAC", "SACConfig", "PRESETS", "SeedStack", "build"]
