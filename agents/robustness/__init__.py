"""The robustness room: perturbations and attacks (robust), the Lipschitz meter, the evaluation conditions
of ``evaluate.py`` (context, conditions, multi_agent, catalog) and their plots. It imports only the engine
(``agents.engine``) and ``envs``; families and ``evaluate.py`` use it.
"""
