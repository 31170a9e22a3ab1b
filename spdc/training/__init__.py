"""The training loop shared by teacher fine-tuning and (later) every SPD stage."""
