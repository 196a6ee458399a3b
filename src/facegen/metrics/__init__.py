"""Metrics: Inception features, FID, KID, precision/recall, reconstruction, memorization."""
