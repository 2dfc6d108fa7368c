"""Traffic-signal control on SUMO (``env.id = traffic:grid``): a signalised grid whose lights are the agents.

:func:`make_traffic_env` builds the ``MultiAgentVecEnv`` (:mod:`envs.traffic.env`); the network and demand are
generated at run time with SUMO's own tools (:mod:`envs.traffic.network`), the simulations run in libsumo worker
processes or over TraCI (:mod:`envs.traffic.backends`), and :mod:`envs.traffic.simulation` holds the light
control, features and rewards. Needs the ``traffic`` extra (``pip install -e .[traffic]``).
"""

from envs.traffic.env import TRAFFIC_ENVS, TrafficGrid, make_traffic_env, make_traffic_marl_env

__all__ = ["TRAFFIC_ENVS", "TrafficGrid", "make_traffic_env", "make_traffic_marl_env"]
