"""TaskMem: the reference task-focused memorization policy (trainer lands in a later issue)."""
