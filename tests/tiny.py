"""Overrides that shrink the default run of each loop to seconds, for tests that train: ``off_policy``
(SAC / DQN / ERC) and ``episodic`` (the multi-agent learners). The ``tiny_env_overrides`` fixture hands out
copies; module-level helpers import them from here."""

TINY_OVERRIDES: dict[str, tuple[str, ...]] = {
    "off_policy": (
        "train.total_steps=300",
        "train.update_after_steps=100",
        "train.batch_size=32",
        "train.eval_every=0",
        "train.eval_episodes=1",
        "train.log_every=100",
        "train.checkpoint_every=100",
        "train.progress=false",
    ),
    "episodic": (
        "train.total_steps=60",
        "train.batch_episodes=4",
        "train.update_after_episodes=4",
        "train.eval_every=0",
        "train.eval_episodes=2",
        "train.log_every=20",
        "train.checkpoint_every=30",
        "train.progress=false",
    ),
}
