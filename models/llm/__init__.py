"""The local LLM (M_Z): loading it, the call log, generation, unpack and ask, and its own calibrated credences."""
