"""Face of deep-linear (families/contract.py): the only glue. The science is in task (the draw, the
measures), theory (mode flow DL-6, matrix flow DL-5, closed form DL-7) and reference (gradient descent)."""
from __future__ import annotations

from .spec import DeepLinearSpec

NAME = "deep-linear"                                                      # rule 1
TITLE = "two-layer linear network, whitened regression (Saxe et al. 2014)"  # rule 2
SPEC = DeepLinearSpec                                                     # rule 3
AXIS = "flow_time"                                                        # rule 4
MEASURES = ("half_times", "slowest_half_time", "final_loss")              # rule 9
FIGURES = ("rd_deep_linear.deep_linear_modes:make_figure",)               # rule 15


def draw(spec):                                                           # rule 5
    from . import task
    return task.draw(spec)


def predict(spec, **options):                                             # rule 6
    from . import theory
    return theory.predict(spec, **options)


def simulate(spec, progress=None):                                        # rule 7
    from . import reference
    return reference.simulate(spec, progress=progress)


def summarise(spec, trajectory):                                          # rule 8
    from . import task
    return task.summarise(spec, trajectory)


def comparison_theories(spec):                                            # rule 11
    from . import theory
    return theory.comparison_theories(spec)


def levels(spec, theory):                                                 # rule 12
    from . import theory as module
    return module.levels(spec, theory)


def flow_probe(spec):                                                     # rule 13
    from . import theory
    return theory.flow_probe(spec)
