"""The catalog of ``evaluate.py``'s conditions: the generic ones of this room and the families' own."""

from __future__ import annotations

from agents.robustness.conditions import MassFriction, NoiseSweep, Video
from agents.robustness.multi_agent import AgentMassSweep, LipschitzMeter, MaliciousAgents, ObservationAttack


# The generic conditions of evaluate.py, in the order they run and appear in the report; families add
# their own (Family.conditions, e.g. QARL's force adversaries) after the single-agent ones.
def generic_conditions() -> tuple[list[type], list[type]]:
    """(single-agent conditions, multi-agent conditions) that every family's runs may use."""
    return [NoiseSweep, MassFriction], [Video, ObservationAttack, AgentMassSweep, MaliciousAgents, LipschitzMeter]


def conditions(family_conditions: list[type] = ()) -> list[type]:
    """Every condition class evaluate.py offers: the generic ones with ``family_conditions`` in between."""
    single, multi = generic_conditions()
    return [*single, *family_conditions, *multi]
