-- What the product checked in a model call's answer: for a grounded unpack, the statements kept, those
-- dropped with what they said that their evidence did not, and the parts quoted instead. JSON, written
-- by models/llm/calls.py after the call is logged; '{}' for calls nothing was checked in.
ALTER TABLE llm_calls ADD COLUMN checks TEXT NOT NULL DEFAULT '{}';
