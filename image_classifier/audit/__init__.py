"""Auditing the data: suspect labels and near-duplicates (the audit stage)."""
