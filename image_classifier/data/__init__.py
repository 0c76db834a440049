"""From a dataset source to labelled uint8 arrays: sources, archives, decoding, the split."""
