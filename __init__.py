"""llmsched: the LLM-aware scheduler behind F5 BIG-IP.

The repository root is this package; its folders are the subpackages: `llmsched.collectors` (BIG-IP poller and
metrics scraper), `llmsched.scorer` (scoring workers), `llmsched.api` (the decision API), `llmsched.shared` (config,
Redis layout, decision pipeline), `llmsched.cli` (the `llmsched` command), `llmsched.emulators` and `llmsched.bench`.
"""

__version__ = "0.2.0"
