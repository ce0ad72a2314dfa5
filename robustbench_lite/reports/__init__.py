"""Reports: render an `AuditResult` to a self-contained HTML page and write output files."""
