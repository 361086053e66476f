"""``support-dialogs``: (question, answer) pairs from the ChatterBot corpus, English and Chinese.

Read at run time from the installed ``chatterbot-corpus`` package (``data/english/*.yml``,
``data/chinese/*.yml``; ``yaml.safe_load``). Each file names its categories and holds conversations, lists
of turns ``[question, answer, ...]``: every two consecutive turns make a pair (``[a, b, c]`` gives (a, b)
and (b, c)). Turns that are not text (a YAML ``yes`` read as a boolean, a number, a nested list) break
the pairs they are in, which are dropped; a prompt's whitespace is normalised (an answer keeps its line
breaks: the coding answers hold code); exact duplicate pairs (same language, prompt and response) are kept
once. That matters: ``tech_support.yml`` has 1,050 conversations but only 10 distinct ones, so the English
part has 1,176 distinct pairs (1,015 distinct prompts) and the Chinese 550 (447).

The split is fixed (seeded, independent of the training seed) and made by *prompt*: all answers to one
question land in the same split, so a test question is never seen in training. Within each (language,
category) the distinct prompts are shuffled and dealt 80 / 10 / 10 into train / validation / test (largest
remainder, a category of fewer than 3 prompts stays in train). ``support-dialogs-en`` and
``support-dialogs-zh`` are the English and Chinese parts of the same split.
"""

from __future__ import annotations

import random
from pathlib import Path

from tuneforge.data.builtin.common import SPLIT_SEED, normalise_space, package_folder
from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError

NAME = "support-dialogs"
PACKAGE = "chatterbot_corpus"
INSTALL = "pip install chatterbot-corpus==1.3.3"
LANGUAGES = {"en": "english", "zh": "chinese"}
SHARES = (0.8, 0.1, 0.1)  # train, validation, test (of the prompts of each language and category)


def conversation_pairs(conversation: object) -> tuple[list[tuple[str, str]], int]:
    """(prompt, response) of consecutive text turns, and how many pairs were dropped for a non-text turn."""
    if not isinstance(conversation, list):
        return [], 1
    pairs, dropped = [], 0
    for first, second in zip(conversation, conversation[1:]):
        if isinstance(first, str) and isinstance(second, str) and normalise_space(first) and normalise_space(second):
            pairs.append((normalise_space(first), keep_lines(second)))
        else:
            dropped += 1
    return pairs, dropped


def keep_lines(text: str) -> str:
    """An answer with its line breaks (the coding answers hold code) but no trailing spaces or blank edges."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def read_language(folder: Path, language: str):
    """Every pair of one language folder as a Pair with meta language and category (file order)."""
    import yaml

    from tuneforge.tasks.generation.records import Pair

    files = sorted(folder.glob("*.yml"))
    if not files:
        raise TuneforgeError(f"{folder}: no .yml files in the installed {PACKAGE} package. Reinstall it with: "
                             f"{INSTALL}")
    pairs, seen, dropped = [], set(), 0
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise TuneforgeError(f"{path}: unreadable ({exc}). Reinstall it with: {INSTALL}") from None
        if not isinstance(data, dict):
            continue
        category = path.stem  # the file name: categories lists aliases ("AI", "artificial intelligence")
        for conversation in data.get("conversations") or []:
            found, bad = conversation_pairs(conversation)
            dropped += bad
            for prompt, response in found:
                if (prompt, response) not in seen:
                    seen.add((prompt, response))
                    pairs.append(Pair(prompt, response, meta={"language": language, "category": category}))
    return pairs, dropped


def deal(pairs: list, seed: int) -> tuple[list, list, list]:
    """Train / validation / test by distinct prompt within each (language, category); see the module doc.
    A prompt found in several categories belongs to the first one it appears in (so it is in one split)."""
    home: dict[tuple[str, str], str] = {}  # (language, prompt) -> its category
    strata: dict[tuple[str, str], list[str]] = {}  # (language, category) -> distinct prompts, first-seen order
    for pair in pairs:
        key = (pair.meta["language"], pair.prompt)
        if key not in home:
            home[key] = pair.meta["category"]
            strata.setdefault((key[0], home[key]), []).append(pair.prompt)
    where: dict[tuple[str, str], int] = {}  # (language, prompt) -> 0 train, 1 validation, 2 test
    for (language, category), prompts in strata.items():
        # one generator per stratum: a language's split is the same whether or not the other is loaded
        random.Random(f"{seed}-{language}-{category}").shuffle(prompts)
        n = len(prompts)
        n_val, n_test = (int(n * SHARES[1] + 0.5), int(n * SHARES[2] + 0.5)) if n >= 3 else (0, 0)
        for i, prompt in enumerate(prompts):
            where[(language, prompt)] = 2 if i < n_test else 1 if i < n_test + n_val else 0
    out: tuple[list, list, list] = ([], [], [])
    for pair in pairs:
        out[where[(pair.meta["language"], pair.prompt)]].append(pair)
    return out


def load(languages: tuple[str, ...] = ("en", "zh")) -> DatasetSplits:
    """The fixed split of the pairs of ``languages`` (codes of :data:`LANGUAGES`)."""
    root = package_folder(PACKAGE)
    if root is None:
        raise TuneforgeError(f'The package "{PACKAGE}" is not installed. Install it with: {INSTALL}')
    pairs = []
    for code in languages:
        found, _ = read_language(root / "data" / LANGUAGES[code], code)
        pairs += found
    train, validation, test = deal(pairs, SPLIT_SEED)
    name = NAME if len(languages) > 1 else f"{NAME}-{languages[0]}"
    return DatasetSplits(train, validation, test, labels=[], name=name,
                         source=f"{PACKAGE}: data/{{{','.join(LANGUAGES[c] for c in languages)}}}/*.yml")
