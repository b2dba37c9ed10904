"""lawful: physics-constrained machine learning."""
