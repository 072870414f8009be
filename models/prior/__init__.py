"""P(Z) from credences: the engine choice, exact LP, scalable bounds, near-duplicates, coherence, imitation."""
