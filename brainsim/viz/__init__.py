"""Plots of a results folder, drawn from its tables alone (no JAX, no pyplot state).

``make_plots(result_dir)`` (re)writes the PNGs an experiment's kind calls for and returns
their paths: ``raster.png`` always; ``rate_curve.png`` (activation_sweep),
``silencing.png`` (silencing_screen), ``grid.png`` (pairwise_grid),
``perturbation_map.png`` (perturbation_map). Each ``plot_*`` function writes one of them
(``out`` overrides the path) and each ``*_figure`` function returns the
``matplotlib.figure.Figure`` without writing anything.
"""

from brainsim.viz._plots import (
    PLOTS_BY_KIND,
    grid_figure,
    make_plots,
    perturbation_map_figure,
    plot_grid,
    plot_perturbation_map,
    plot_raster,
    plot_rate_curve,
    plot_silencing,
    plot_traces,
    raster_figure,
    rate_curve_figure,
    silencing_figure,
)
from brainsim.viz._tables import KINDS, Results, Skip

__all__ = [
    "KINDS",
    "PLOTS_BY_KIND",
    "Results",
    "Skip",
    "grid_figure",
    "make_plots",
    "perturbation_map_figure",
    "plot_grid",
    "plot_perturbation_map",
    "plot_raster",
    "plot_traces",
    "plot_rate_curve",
    "plot_silencing",
    "raster_figure",
    "rate_curve_figure",
    "silencing_figure",
]
