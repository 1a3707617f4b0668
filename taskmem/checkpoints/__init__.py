"""Checkpoints shipped with the package, loaded by name as ``package:taskmem/checkpoints/<name>``.

``mini``: the mini memorizer after Phase One, with its ``training_record.json``; retrain it with
``taskmem-bench train taskmem --stage all`` (see docs/taskmem.md).
"""
