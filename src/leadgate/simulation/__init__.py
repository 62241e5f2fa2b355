"""A seeded, synthetic event history of a B2B agency's website, for demos and benchmarks."""

from leadgate.simulation.generator import (
    TRUTH_HEADER,
    SimulationConfig,
    SimulationSummary,
    main_simulate,
    persona_for,
    simulate,
)
from leadgate.simulation.site import DISPOSABLE, FREE_MAIL, PERSONAS, RIVALS, Persona

__all__ = [
    "DISPOSABLE",
    "FREE_MAIL",
    "PERSONAS",
    "RIVALS",
    "TRUTH_HEADER",
    "Persona",
    "SimulationConfig",
    "SimulationSummary",
    "main_simulate",
    "persona_for",
    "simulate",
]
