"""Templates, the prompt config section and verbalizer arithmetic (no model needed)."""

from __future__ import annotations

import copy

import pytest
import torch

from tuneforge.config import TrainConfig, load_config
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.prompting.config import PromptConfig
from tuneforge.prompting.template import Template, split_space, template_problems
from tuneforge.prompting.verbalizer import Verbalizer, combine_tokens, label_scores

BASE = {"name": "zs", "data": {"dataset": "airline-sentiment"}}
PROMPT = {"template": "{text} It was {answer}.", "verbalizer": {"negative": "bad", "positive": ["good", "great"]}}


def config_error(prompt: dict, overrides: list[str] | None = None) -> str:
    with pytest.raises(TuneforgeError) as info:
        load_config(TrainConfig, data=copy.deepcopy({**BASE, "prompt": prompt}), overrides=overrides)
    return str(info.value)


def test_render_fills_slots_and_keeps_braces_in_the_text():
    template = Template("Review: {text} | {text_pair} => {answer}. {{literal}}")
    example = Example(text="a {weird} text", text_pair="second")
    assert template.split(example.text, example.text_pair) == ("Review: a {weird} text | second => ", ". {literal}")
    assert template.render(example, "great") == "Review: a {weird} text | second => great. {literal}"
    assert template.uses_pair and not template.answer_is_last()
    assert Template("{text}\nSentiment: {answer}  ").answer_is_last()


def test_space_before_the_answer_belongs_to_the_word():
    assert split_space("It was ") == ("It was", " ")
    assert split_space("Sentiment:\n") == ("Sentiment:", "\n")
    assert split_space("") == ("", "")


@pytest.mark.parametrize(("template", "expected"), [
    ("{txt} was {answer}", 'unknown slot "{txt}". Did you mean "text"?'),
    ("{text} was", "exactly one {answer} slot"),
    ("{text} {answer} {answer}", "but has 2"),
    ("It was {answer}", "no {text} slot"),
    ("{text} {text} {answer}", "{text} appears 2 times"),
    ("{text} {answer", "not a valid template"),
    ("{text} {} {answer}", "Slots are {text}, {text_pair} and {answer}"),
])
def test_template_problems_name_the_fix(template, expected):
    assert any(expected in p for p in template_problems(template)), template_problems(template)


def test_config_errors_name_the_field_and_the_closest_key():
    message = config_error({**PROMPT, "templat": "x"})
    assert 'unknown key "prompt.templat". Did you mean "template"?' in message
    assert '"prompt.template" = \'{text} was\'' in config_error({**PROMPT, "template": "{text} was"})
    assert "stands for both" in config_error({**PROMPT, "verbalizer": {"a": "good", "b": ["good"]}})
    assert "at least two labels" in config_error({**PROMPT, "verbalizer": {"a": "good"}})
    assert "non-empty word" in config_error({**PROMPT, "verbalizer": {"a": "good", "b": []}})
    assert "'mean', 'first' or 'sum'" in config_error({**PROMPT, "multi_token": "max"})
    message = config_error(PROMPT, ["prompt.calibrat=true"])
    assert 'override "prompt.calibrat=true"' in message and 'Did you mean "calibrate"?' in message


def test_yaml_numbers_and_booleans_in_the_verbalizer(tmp_path):
    """Unquoted 0/1 labels (a CSV's) were 'prompt.verbalizer.0.[key] = 0: input should be a valid string', once per
    label; Yes/No words (PET's entailment verbalizer) four pydantic lines about str and list[str]."""
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE) + "prompt:\n  template: '{text} It was {answer}'\n"
                    "  verbalizer: {0: bad, 1: [good, 5]}\n", encoding="utf-8")
    assert load_config(TrainConfig, path=path).prompt.words() == {"0": ["bad"], "1": ["good", "5"]}
    path.write_text(yaml.safe_dump(BASE) + "prompt:\n  template: '{text} Right? {answer}'\n"
                    "  verbalizer: {entailment: Yes, contradiction: No, yes: maybe}\n", encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        load_config(TrainConfig, path=path)
    message = str(info.value)
    assert "1 problem(s)" in message and "line 6" in message
    assert 'the label(s) true are booleans: YAML reads an unquoted yes/no/true/false/on/off as one; quote each label ' \
           'as your data writes it, e.g. "yes": WORD' in message
    assert 'the word(s) of "entailment" (true), "contradiction" (false) are booleans, not words' in message
    assert 'quote each word, e.g. entailment: "Yes"' in message


def test_prompt_section_round_trips_and_keeps_label_order():
    cfg = load_config(TrainConfig, data=copy.deepcopy({**BASE, "prompt": PROMPT}), overrides=["prompt.multi_token=sum"])
    assert isinstance(cfg.prompt, PromptConfig) and cfg.prompt.multi_token == "sum"
    assert cfg.prompt.words() == {"negative": ["bad"], "positive": ["good", "great"]}
    assert load_config(TrainConfig, data=BASE).prompt is None
    again = load_config(TrainConfig, data=cfg.model_dump(mode="json"))
    assert again.prompt == cfg.prompt


def test_multi_token_words_combine_by_mean_first_or_sum():
    logprobs = torch.tensor([[-1.0, -3.0], [-0.5, -0.5]])  # two words of two tokens each
    assert combine_tokens(logprobs, "mean").tolist() == [-2.0, -0.5]
    assert combine_tokens(logprobs, "sum").tolist() == [-4.0, -1.0]
    assert combine_tokens(logprobs, "first").tolist() == [-1.0, -0.5]


def test_a_label_scores_its_best_word():
    verbalizer = Verbalizer.from_mapping({"negative": ["bad"], "positive": ["good", "great"]})
    assert verbalizer.flat == ["bad", "good", "great"] and verbalizer.word_label == [0, 1, 1]
    words = torch.tensor([[-2.0, -3.0, -1.0], [-0.5, -5.0, -4.0]])
    assert label_scores(words, verbalizer.word_label, 2).tolist() == [[-2.0, -1.0], [-0.5, -4.0]]
