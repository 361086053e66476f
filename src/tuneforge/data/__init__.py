"""The data layer: read user files, check and split datasets, load built-in ones, export splits."""

from tuneforge.data.builtin import BuiltinDataset, list_datasets, load_builtin
from tuneforge.data.export import export_splits
from tuneforge.data.files import SUPPORTED_SUFFIXES, read_examples
from tuneforge.data.records import DatasetSplits, Example
from tuneforge.data.splits import stratified_split, subsample_stratified
from tuneforge.data.validate import labels_from_train, validate_splits

__all__ = [
    "SUPPORTED_SUFFIXES",
    "BuiltinDataset",
    "DatasetSplits",
    "Example",
    "export_splits",
    "labels_from_train",
    "list_datasets",
    "load_builtin",
    "read_examples",
    "stratified_split",
    "subsample_stratified",
    "validate_splits",
]
