"""The Pareto report of a run: a data step, then drawing steps.

:mod:`nas.report.data` reads the run's storage into plain tables (:class:`ReportData`); :mod:`nas.report.figures`
turns them into the scatter of two objectives; :mod:`nas.report.write` writes report.html, pareto.png and the
tables. The drawing steps only read the data, as Optuna's visualization splits ``_get_*_info`` from drawing.
"""
from nas.report.data import (
    FEW_ON_FRONT,
    NOT_EVALUATED,
    ReportData,
    baseline_frame,
    diagnose_fit,
    report_data,
    versus_found,
)
from nas.report.figures import LABEL_POSITIONS, label_positions, scatter_data, scatter_figure
from nas.report.write import write_html, write_png, write_report, write_tables

__all__ = ["FEW_ON_FRONT", "NOT_EVALUATED", "ReportData", "baseline_frame", "diagnose_fit", "report_data",
           "versus_found", "LABEL_POSITIONS", "label_positions", "scatter_data", "scatter_figure", "write_html",
           "write_png", "write_report", "write_tables"]
