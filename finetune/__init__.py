"""Fine-tuning: task interface, preprocessing, heads and scorers per task type."""
