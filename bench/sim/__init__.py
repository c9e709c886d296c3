"""The routing simulator behind `llmsched bench routing`: vLLM engines, BIG-IP, llmsched's real decision path.

Modules: profiles (engine presets), workload (request lengths, arrivals), engine (continuous batching),
pipeline (poller/scraper/scoring timing, herd counters), policies, scenario (YAML schema), runner (event
loop), stats, report, calibrate. docs/routing.md describes the model and its calibration.
"""
