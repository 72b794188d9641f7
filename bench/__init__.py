"""totpd's benchmarks: `make bench` runs them all and prints one report (see bench.run)."""
