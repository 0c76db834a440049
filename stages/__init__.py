"""One module per pipeline stage (run as `python -m stages.<name>`) and the modules they share."""
