"""cocotb benches and the co-simulation glue (runner, the core layer bench, demo, bench)."""
