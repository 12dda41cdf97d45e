"""NeMo Gym output rows: the one row builder, the files a run writes, resume, aggregate metrics."""
