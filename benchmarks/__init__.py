"""streamflow's benchmarks: ``python -m benchmarks`` from the repository's root."""
