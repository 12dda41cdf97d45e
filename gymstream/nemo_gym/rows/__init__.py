"""NeMo Gym input rows: read, validate (file:line: field), route, expand repeats and indices."""
