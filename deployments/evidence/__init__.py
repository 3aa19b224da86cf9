"""Evidence for auditors: one change's whole story, reproducible samples of changes, and the review
of emergency changes after the fact."""
