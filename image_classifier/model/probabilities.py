"""Class probabilities from a model's logits, in float64 so that nothing overflows."""

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities, shifted by the row maximum so exp cannot overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (float64, each row sums to 1)."""
    return np.exp(log_softmax(logits))
