"""Models shipped inside an installed Python package, named independently of where it is
installed: ``package:<module>/<folder>`` (e.g. ``package:taskmem/checkpoints/mini``).

The name, not the local path, goes into plans and manifests, so two machines running the same
shipped checkpoint record the same model; :func:`resolve` finds the folder when it is loaded or
hashed.
"""

from __future__ import annotations

from importlib import resources

PREFIX = "package:"


def is_packaged(model: str) -> bool:
    return model.startswith(PREFIX)


def resolve(model: str) -> str:
    """The local folder of a ``package:`` model name; any other name unchanged."""
    if not is_packaged(model):
        return model
    module, _, folder = model.removeprefix(PREFIX).partition("/")
    if not module or not folder:
        raise ValueError(f"packaged model names look like package:<module>/<folder>, got {model!r}")
    try:
        root = resources.files(module)
    except ModuleNotFoundError:
        raise FileNotFoundError(f"model {model!r}: no installed package {module!r}") from None
    path = root / folder
    if not path.is_dir():
        raise FileNotFoundError(f"model {model!r}: package {module!r} has no folder {folder!r}")
    return str(path)
