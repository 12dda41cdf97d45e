"""The NeMo Gym contract: rows in (read, validate, expand), the output-row builder, files."""
