"""Models over the workspace: the local LLM that unpacks Z, P(Z) from credences, and the imitation trainer."""
