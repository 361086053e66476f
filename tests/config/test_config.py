"""The training config: shipped YAML files, error messages in the user's words, overrides, round trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from tuneforge.cli.main import app
from tuneforge.config import TrainConfig, dump_config, load_config
from tuneforge.errors import TuneforgeError
from tuneforge.methods import registry

REPO = Path(__file__).resolve().parents[2]
# other recipes, validated by their own tests (tests/serve, tests/compression, tests/apps, tests/pretraining)
OTHER_RECIPES = {"serve.yaml", "airline-distill.yaml", "monitor-airline.yaml", "minilm-mlm.yaml",
                 "chinese-encoder.yaml", "chinese-encoder-small.yaml", "chinese-encoder-small-bag.yaml",
                 "chinese-encoder-words.yaml", "chinese-encoder-words-embeddings.yaml",
                 "chinese-encoder-electra.yaml", "chinese-encoder-transfer.yaml", "recommend-demo.yaml"}
OTHER_RECIPES |= {"assistant-chatterbot.yaml"}  # tests/apps/assistant
SHIPPED = sorted(p for p in [*REPO.glob("configs/**/*.yaml"), *REPO.glob("configs/**/*.yml")]
                 if p.name not in OTHER_RECIPES)

# A valid config; each test below breaks one line of it. Line numbers are 1-based.
VALID_LINES = [
    "name: tiny",                    # 1
    "model: minilm",                 # 2
    "data:",                         # 3
    "  dataset: airline-sentiment",  # 4
    "method:",                       # 5
    "  name: lora",                  # 6
    "  r: 8",                        # 7
    "train:",                        # 8
    "  epochs: 1",                   # 9
    "  batch_size: 8",               # 10
]


def write(tmp_path: Path, lines: list[str], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_error(**kwargs) -> str:
    with pytest.raises(TuneforgeError) as info:
        load_config(TrainConfig, **kwargs)
    return str(info.value)


def test_configs_folder_ships_yaml_files():
    assert SHIPPED, f"no YAML files under {REPO / 'configs'}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_validates(path):
    cfg = load_config(TrainConfig, path=path)
    assert isinstance(cfg, TrainConfig)
    assert cfg.method.name in registry()


def test_valid_lines_load(tmp_path):
    cfg = load_config(TrainConfig, path=write(tmp_path, VALID_LINES))
    assert (cfg.name, cfg.method.name, cfg.method.r, cfg.train.batch_size) == ("tiny", "lora", 8, 8)


@pytest.mark.parametrize(("after_line", "typo", "dotted", "suggestion"), [
    (1, "nmae: other", "nmae", "name"),
    (4, "  text_colum: text", "data.text_colum", "text_column"),
    (7, "  rr: 8", "method.rr", "r"),
    (9, "  learnin_rate: 0.001", "train.learnin_rate", "learning_rate"),
], ids=["top-level", "data", "method", "train"])
def test_unknown_key_names_key_line_and_closest_valid_key(tmp_path, after_line, typo, dotted, suggestion):
    lines = VALID_LINES[:after_line] + [typo] + VALID_LINES[after_line:]
    path = write(tmp_path, lines)
    message = config_error(path=path)
    assert str(path) in message
    assert f'line {after_line + 1}, unknown key "{dotted}"' in message
    assert f'Did you mean "{suggestion}"?' in message


def test_method_keys_are_scoped_to_the_chosen_method(tmp_path):
    lines = [line.replace("name: lora", "name: full") for line in VALID_LINES]
    message = config_error(path=write(tmp_path, lines))
    assert 'line 7, unknown key "method.r"' in message


def test_every_problem_is_reported_at_once(tmp_path):
    lines = VALID_LINES[:4] + ["  text_colum: text"] + VALID_LINES[4:9] + ["  learnin_rate: 0.001"] + VALID_LINES[9:]
    message = config_error(path=write(tmp_path, lines))
    assert "2 problem(s)" in message
    assert '"data.text_colum"' in message and '"train.learnin_rate"' in message


@pytest.mark.parametrize(("line", "bad", "dotted", "shown"), [
    (9, "  epochs: many", "train.epochs", "'many'"),
    (7, "  r: eight", "method.r", "'eight'"),
    (10, "  batch_size: [8]", "train.batch_size", "[8]"),
])
def test_wrong_type_names_field_value_and_line(tmp_path, line, bad, dotted, shown):
    lines = list(VALID_LINES)
    lines[line - 1] = bad
    message = config_error(path=write(tmp_path, lines))
    assert f'line {line}, "{dotted}" = {shown}' in message


@pytest.mark.parametrize("method", ["lorra", {"name": "lorra"}], ids=["shorthand", "section"])
def test_unknown_method_suggests_the_closest(method):
    message = config_error(data={"data": {"dataset": "airline-sentiment"}, "method": method})
    assert 'unknown method "lorra"' in message
    assert 'Did you mean "lora"?' in message


def test_method_shorthand(tmp_path):
    path = write(tmp_path, ["data: {dataset: airline-sentiment}", "method: lora"])
    cfg = load_config(TrainConfig, path=path)
    assert cfg.method == registry()["lora"].config()


def test_method_shorthand_takes_overrides_of_its_fields(tmp_path):
    path = write(tmp_path, ["data: {dataset: airline-sentiment}", "method: lora"])
    cfg = load_config(TrainConfig, path=path, overrides=["method.r=16"])
    assert (cfg.method.name, cfg.method.r) == ("lora", 16)


def test_overrides_are_parsed_as_typed_values(tmp_path):
    cfg = load_config(TrainConfig, path=write(tmp_path, VALID_LINES), overrides=[
        "train.learning_rate=1e-3", "train.group_by_length=false", "train.max_grad_norm=null",
        "train.adam_betas=[0.8, 0.99]", "method.target_modules=[query, key]", "method.alpha=32",
        "data.max_length=64", "name=override"])
    assert isinstance(cfg.train.learning_rate, float) and cfg.train.learning_rate == pytest.approx(1e-3)
    assert cfg.train.group_by_length is False
    assert cfg.train.max_grad_norm is None
    assert cfg.train.adam_betas == (0.8, 0.99)
    assert cfg.method.target_modules == ["query", "key"]
    assert cfg.method.alpha == 32.0
    assert cfg.data.max_length == 64
    assert cfg.name == "override"


@pytest.mark.parametrize(("override", "field", "expected"), [
    ("train.learning_rate=1e-3", ("train", "learning_rate"), 1e-3),
    ("train.max_steps=1e3", ("train", "max_steps"), 1000),
    ("data.max_train_samples=5e3", ("data", "max_train_samples"), 5000),
])
def test_overrides_read_scientific_notation_as_numbers(tmp_path, override, field, expected):
    # apply_overrides documents YAML-typed values such as `1e-3`; PyYAML (YAML 1.1) reads `1e3` and
    # `5e3` (no dot, no exponent sign) as strings, which integer fields then reject.
    cfg = load_config(TrainConfig, path=write(tmp_path, VALID_LINES), overrides=[override])
    assert getattr(getattr(cfg, field[0]), field[1]) == expected


def test_override_of_an_unknown_key_is_an_error_with_a_suggestion(tmp_path):
    message = config_error(path=write(tmp_path, VALID_LINES), overrides=["train.learnin_rate=1e-3"])
    assert 'unknown key "train.learnin_rate"' in message
    assert 'Did you mean "learning_rate"?' in message


@pytest.mark.parametrize("override", ["train.epochs", "epochs 2"])
def test_override_without_equals_sign(tmp_path, override):
    message = config_error(path=write(tmp_path, VALID_LINES), overrides=[override])
    assert f'"{override}"' in message
    assert "key=value" in message


@pytest.mark.parametrize(("lines", "line"), [
    (["name: tiny", "train:", "  epochs: 1", "   batch_size: 8"], 4),
    (["name: tiny", "data: [airline", "method: lora"], 3),
    (["name: tiny", "\tmodel: minilm"], 2),
], ids=["indentation", "unclosed-bracket", "tab"])
def test_malformed_yaml_names_the_line(tmp_path, lines, line):
    path = write(tmp_path, lines)
    message = config_error(path=path)
    assert f"{path} line {line}" in message
    assert "not valid YAML" in message


def test_config_that_is_not_a_mapping(tmp_path):
    message = config_error(path=write(tmp_path, ["- name: tiny", "- model: minilm"]))
    assert "must be a mapping" in message and "list" in message


def test_missing_config_file_names_the_path(tmp_path):
    message = config_error(path=tmp_path / "nope.yaml")
    assert str((tmp_path / "nope.yaml").resolve()) in message and "does not exist" in message


@pytest.mark.parametrize("method", sorted(registry()))
def test_dump_config_round_trips(tmp_path, method, tiny_config):
    tiny_config["method"] = {"name": method}
    tiny_config["train"].update(adam_betas=[0.8, 0.95], max_grad_norm=None, scheduler="cosine")
    cfg = load_config(TrainConfig, data=tiny_config)
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(TrainConfig, path=path) == cfg


def _fields(model: type[BaseModel], depth: int = 0):
    """(depth, name) of every field, sections walked recursively (method is its own listing)."""
    for name, field in model.model_fields.items():
        yield depth, name
        sub = field.annotation
        if name != "method" and isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _fields(sub, depth + 1)


def test_config_show_lists_every_field_and_every_method():
    result = CliRunner().invoke(app, ["config", "show", "train"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    recipe, _, methods = text.partition("# methods")
    for depth, name in _fields(TrainConfig):
        assert re.search(rf"^{'  ' * depth}{name}\b", recipe, re.M), f"config show lacks {name}"
    blocks = dict(re.findall(r"^method\.name: (\S+)(.*?)(?=^method\.name: |\Z)", methods, re.M | re.S))
    assert set(blocks) == set(registry())
    for method, spec in registry().items():
        for name in spec.config.model_fields:
            if name != "name":
                assert re.search(rf"^  {name}: ", blocks[method], re.M), f"config show lacks method.{name}"


def test_config_show_unknown_recipe_suggests():
    from tuneforge.config.describe import describe

    with pytest.raises(TuneforgeError, match='Did you mean "train"'):
        describe("trian")


def test_error_in_an_override_does_not_blame_a_line_of_the_file(tmp_path):
    # train.epochs is `1` on line 9 of the file; the bad value came from the command line.
    message = config_error(path=write(tmp_path, VALID_LINES), overrides=["train.epochs=many"])
    problem = next(line for line in message.splitlines() if '"train.epochs"' in line)
    assert "'many'" in problem
    assert "line 9" not in problem, f"the file's line 9 holds a valid value; the override is at fault: {problem}"


@pytest.mark.parametrize(("override", "unknown"), [("trian.epochs=1", "trian"), ("data.foo.bar=1", "data.foo")])
def test_an_override_that_creates_an_unknown_section_is_named(tmp_path, override, unknown):
    # The unknown key is the section the override created, not line 3 ("data:") of the file.
    message = config_error(path=write(tmp_path, VALID_LINES), overrides=[override])
    assert f'override "{override}": unknown key "{unknown}"' in message
    assert "line 3" not in message


def test_overrides_given_as_one_string_are_an_error_not_split_into_characters(tmp_path):
    message = config_error(path=write(tmp_path, VALID_LINES), overrides="train.epochs=2")
    assert 'got the string "train.epochs=2". Write ["train.epochs=2"]' in message  # was: Override "t" ...


def test_a_config_that_is_not_a_path_or_mapping(tmp_path):
    assert "got int 42" in config_error(path=42)  # was a TypeError from Path(42)


def test_overrides_never_change_the_callers_mapping():
    data = {"name": "x", "model": "minilm", "data": {"dataset": "airline-sentiment"},
            "method": {"name": "lora"}, "train": {"epochs": 3}}
    cfg = load_config(TrainConfig, data=data, overrides=["train.epochs=1", "data.max_length=64"])
    assert cfg.train.epochs == 1 and cfg.data.max_length == 64
    assert data["train"] == {"epochs": 3} and data["data"] == {"dataset": "airline-sentiment"}


def test_keys_that_yaml_reads_as_one_are_named_not_reported_as_a_duplicate_or_a_bad_dictionary(tmp_path):
    # `yes` reads as True and True == 1, so `{yes: a, 1: b}` was "the key 1 appears twice" in a file and, as an
    # override, silently kept as text: "input should be a valid dictionary"
    template = "prompt.template='{text} It was {answer}.'"
    message = config_error(path=write(tmp_path, VALID_LINES),
                           overrides=[template, "prompt.verbalizer={yes: a, 1: b}"])
    assert 'override "prompt.verbalizer={yes: a, 1: b}"' in message
    assert '"yes" (line 1) and "1" (line 1) are one key' in message
    assert 'quote them as text: "yes": ..., "1": ...' in message
    lines = [*VALID_LINES, "prompt:", "  template: '{text} It was {answer}.'", "  verbalizer: {yes: a, 1: b}"]
    message = config_error(path=write(tmp_path, lines))
    assert "line 13" in message and '"yes" (line 13) and "1" (line 13) are one key' in message


@pytest.mark.parametrize(("override", "hint"), [
    ("train.epochs=", '"train.epochs=" gives no value, which reads as null; write one after the "="'),
    ("name=", '"name=" gives no value'),
    ("name=yes", "YAML reads yes as a boolean; quote the text: name=\"'yes'\""),
    ("name=2024", "YAML reads 2024 as a number; quote the text"),
    ("train.adam_betas=[0.9,", "The value [0.9, is not valid YAML (expected the node content"),
])
def test_override_value_errors_say_how_yaml_read_the_value(tmp_path, override, hint):
    message = config_error(path=write(tmp_path, VALID_LINES), overrides=[override])
    assert f'override "{override}"' in message
    assert hint in message


SEARCH_LINES = [*VALID_LINES, "search:", "  space:", "    train.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}",
                "    method.r: [4, 8]"]


@pytest.mark.parametrize(("override", "space"), [
    ("search.space.method.r=[2, 16]", {"method.r": [2, 16]}),
    ("search.space.train.learning_rate.high=1e-2", {"train.learning_rate": {"high": 1e-2}}),
    ("search.space.train.weight_decay=[0, 0.01]", {"train.weight_decay": [0, 0.01]}),
    ("search.train.warmup={low: 0, high: 0.2}", {"train.warmup": {"low": 0, "high": 0.2}}),
])
def test_overrides_reach_search_space_keys_that_hold_dots(tmp_path, override, space):
    # search.space's keys are field paths ("method.r"): `search.space.method.r=[2, 16]` was split at every dot
    # into {method: {r: ...}} and failed with "search.space.method.function-after[_ordered(), Range].low"
    cfg = load_config(TrainConfig, path=write(tmp_path, SEARCH_LINES), overrides=[override])
    for key, expected in space.items():
        got = cfg.search.space[key]
        if isinstance(expected, dict):
            assert {k: getattr(got, k) for k in expected} == expected
        else:
            assert got == expected
    assert cfg.search.space["train.learning_rate"].low == 1e-5  # the rest of the space is kept


def test_errors_in_a_union_do_not_show_pydantic_member_names(tmp_path):
    message = config_error(path=write(tmp_path, SEARCH_LINES), overrides=["search.space.method.r={low: 1}"])
    assert '"search.space.method.r.high" is required but missing' in message
    assert "function-after" not in message and "list[any]" not in message


@pytest.mark.parametrize(("data", "overrides", "said"), [
    ({"data": "airline-sentiment"}, [], '"data" = \'airline-sentiment\': a section, not a single value; give its keys '
                                        "(dataset, train, validation, test, text_column, text_pair_column, ...) under "
                                        "it, e.g. data.dataset=airline-sentiment"),
    ({"data": {"dataset": "airline-sentiment"}}, ["tracking=tensorboard"],
     'override "tracking=tensorboard": "tracking" = \'tensorboard\': a section, not a single value; give its keys '
     "(tensorboard, tensorboard_dir, mlflow, mlflow_uri, mlflow_experiment) under it, e.g. tracking.tensorboard=true"),
])
def test_a_single_value_where_a_section_goes_names_the_section_keys(data, overrides, said):
    # it said "input should be a valid dictionary or instance of DataConfig"
    assert said in config_error(data=data, overrides=overrides)


def test_switching_from_dataset_to_a_file_on_the_command_line_is_explained():
    message = config_error(data={"data": {"dataset": "airline-sentiment"}}, overrides=["data.train=x.jsonl"])
    assert "data.dataset=null data.train=FILE" in message
    cfg = load_config(TrainConfig, data={"data": {"dataset": "airline-sentiment"}},
                      overrides=["data.dataset=null", "data.train=x.jsonl"])
    assert cfg.data.dataset is None and cfg.data.train.name == "x.jsonl"
