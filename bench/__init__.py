"""gymstream's benchmarks: ``python -m bench`` prints the figures and writes bench/results/.

Each module has one job: ``procs`` measures processes (CPU, peak RSS), ``bare`` and
``kafka_floor`` run as child processes and print JSON, ``pipeline`` drives gymstream's own
commands, ``kafka_io`` asks Kafka about groups and topics, ``analysis`` turns outputs into rates
and latencies, ``limits`` runs the reference points, ``profile`` profiles a worker, ``report``
renders the table.
The older scripts (``rows_read.py``, ``scripted_model_rps.py``) stand alone.
"""
