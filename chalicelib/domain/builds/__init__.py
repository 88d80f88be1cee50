"""The build core every face shares: jobs, dispatch, capacity, nodes, logs, cancel, results."""
