"""A plugin package outside the core, as a third party would write one: a dataset
(``dataset.SaidNumbers``), a memory view (``view.LastEntries``) and a scoring, named by
``module:Class`` paths in its task file ``said_numbers.yaml``. ``tests/test_plugin_pkg.py`` runs
it end to end through the CLI with ``tests`` on the import path and no edit to the core."""
