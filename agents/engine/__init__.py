"""The engine: the VecEnv-facing parts every family runs on (collectors, buffers, the loops and their
Session parts, the runner, configs, checkpoints, logging, networks, losses, schedules, evaluation
episodes) and the family contract (:mod:`agents.engine.family`). It imports no family, no registry and
nothing of the robustness or experiments rooms.
"""
