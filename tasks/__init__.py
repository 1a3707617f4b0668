"""Task configs (YAML) shipped inside the wheel as ``taskmem_bench.tasks``."""
