"""The back-translation hook: any user function that maps a list of texts to a list of texts.

Back-translation (Sennrich et al. 2016; Xie et al. 2020, "UDA") paraphrases a text by translating it to
another language and back. tuneforge ships no translation model (none installs offline); the user names
one of theirs as ``augment.back_translate: "module:function"``, e.g. a function that runs two
``transformers`` translation pipelines. The module is imported from the Python path (the current folder
included), so a ``my_translators.py`` next to the config works.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tuneforge.errors import TuneforgeError

Translator = Callable[[list[str]], list[str]]


def load_translator(spec: str) -> Translator:
    module_name, _, function_name = spec.partition(":")
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TuneforgeError(f'augment.back_translate = "{spec}": cannot import the module "{module_name}" ({exc}). '
                             "Put it on PYTHONPATH or in the current folder.") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TuneforgeError(f'augment.back_translate = "{spec}": the module {module_name} has no function '
                             f'"{function_name}".')
    return function


def back_translate(texts: Sequence[str], translator: Translator, spec: str) -> list[str]:
    """Call the hook once on all texts and check what it returns."""
    result = translator(list(texts))
    if isinstance(result, str) or not isinstance(result, Sequence) or len(result) != len(texts) \
            or not all(isinstance(t, str) for t in result):
        shown = f"{type(result).__name__} of {len(result)}" if isinstance(result, Sequence) else type(result).__name__
        raise TuneforgeError(f'augment.back_translate = "{spec}" returned a {shown}; it must return a list of '
                             f"{len(texts)} strings, one translation per input text, in order.")
    return list(result)
