"""Command-line entry points of llmsched."""
