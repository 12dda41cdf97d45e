"""The one stage runtime: a stage's Kafka clients, watches, stop/drain and commit, in one order."""
