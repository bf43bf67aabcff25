"""Reports: tables (tables), plots (plots), the Markdown/HTML build from the results store (build), and sections
made from a run's own files (sections)."""

from edge_fer.report.build import LEDGER, ReportLedger, build_report
from edge_fer.report.plots import pareto_front
from edge_fer.report.tables import COLUMNS, dataset_note, markdown_table, roofline_ms, table_rows, visible

__all__ = ["COLUMNS", "LEDGER", "ReportLedger", "build_report", "dataset_note", "markdown_table", "pareto_front",
           "roofline_ms", "table_rows", "visible"]
