"""Training: one trainer for every model, with explicit phases for GANs."""
