"""Records -> tables: statistics (`stats`), per-image annotations and the summary (`summary`),
summary.md (`markdown`) and the aggregate stage that runs them (`aggregate`). Imports no torch."""
