"""Wire types: pydantic models for each API family, no I/O."""
