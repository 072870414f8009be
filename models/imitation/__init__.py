"""Imitating the labelers: the trainer and its learners, evaluation, the simulated labeler, agreement, F(Z)."""
