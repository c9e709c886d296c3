"""Benchmarks and the routing simulator."""
