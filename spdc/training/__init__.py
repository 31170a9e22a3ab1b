"""Training: the optimisation loop with its plugins, resumable checkpoints, evaluation, the learning-rate
schedule, and teacher fine-tuning."""
