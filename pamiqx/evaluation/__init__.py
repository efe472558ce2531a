"""Evaluation against ground truth the agent never sees (e.g. representation probes)."""
