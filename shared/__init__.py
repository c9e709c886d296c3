"""Shared foundation of llmsched: config, the Redis key layout and store, models, logging and errors.

Every process package (collectors, scorer, api) imports from here and never from each other.
"""
