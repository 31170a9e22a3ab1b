"""Training: the optimisation loop with its plugins, resumable checkpoints, evaluation, the learning-rate\nschedule, and teacher fine-tuning."""
