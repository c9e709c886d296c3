"""Collectors: the BIG-IP poller and the engine scraper."""
