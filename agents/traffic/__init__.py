"""Learners for the traffic-signal env (``traffic:grid``, :mod:`envs.traffic`): so far QCOMBO's losses as pure
functions (:mod:`agents.traffic.qcombo_losses`); the learner and its loop are not written yet."""
