"""The parity table shared by `spdc export` and `spdc validate`: what was checked, against what, and verdicts."""

from __future__ import annotations

from rich.table import Table

from spdc.deploy.manifest import ParityReport


def parity_table(report: ParityReport) -> Table:
    main = report.main_metric
    table = Table(title=f"parity ({report.precision}) on {report.task} {report.split}, {report.rows} rows",
                  min_width=60)
    for column in ("check", "value", "limit", "result"):
        table.add_column(column, justify="right")
    for check in report.checks:
        verdict = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        table.add_row(check.name, f"{check.value:.6g}", f"{check.limit:.6g}", verdict)
    table.add_row("mean |logit diff|", f"{report.mean_abs_diff:.3g}", "", "")
    if report.agreement is not None and report.precision != "fp32":
        table.add_row("top-1 agreement", f"{report.agreement:.4f}", "", "")
    table.add_row(f"{main} PyTorch / ONNX", f"{report.metrics_torch[main]:.4f} / {report.metrics_onnx[main]:.4f}",
                  "", "")
    return table
