"""The suite's fixtures live in ``tests/fixtures/`` (a package of factories); this file loads the
ones that are pytest fixtures. Helpers that are plain functions are imported from their module,
e.g. ``from fixtures.topics import create_topic``.

- ``fixtures.broker``: ``kafka_bootstrap`` (one broker per run), ``kafka_cluster``, ``unique_name``;
- ``fixtures.model``: ``make_scripted_model`` (a scripted model per test, stopped after it);
- ``fixtures.nemo_gym_sets``: real NeMo Gym 0.7.0 server sets (tests/compat).
"""

pytest_plugins = ["fixtures.broker", "fixtures.model", "fixtures.nemo_gym_sets"]
