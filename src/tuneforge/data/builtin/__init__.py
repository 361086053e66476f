"""Built-in offline datasets, read from installed pip packages at run time."""

from tuneforge.data.builtin.registry import BuiltinDataset, list_datasets, load_builtin

__all__ = ["BuiltinDataset", "list_datasets", "load_builtin"]
