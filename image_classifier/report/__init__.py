"""Scores, tables and figures of a trained model's predictions."""
