"""taskmem-bench: streaming multimodal memory benchmarks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("taskmem-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
