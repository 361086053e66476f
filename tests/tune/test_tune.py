"""tune: an Optuna study of tiny training runs; pruning, resuming, best.yaml, and checks of the search space."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

import tuneforge
from tuneforge.cli.main import main
from tuneforge.config import TrainConfig, load_config
from tuneforge.errors import TuneforgeError

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.usefixtures("one_thread")


def search_config(make_tiny_config, folder, **search):
    cfg = make_tiny_config(folder / "unused")
    cfg.pop("output_dir")
    cfg["train"].update(epochs=1, eval_every=4)  # 12 steps: 3 evaluations per trial for the pruner
    cfg["search"] = {"space": {"train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                               "train.weight_decay": [0.0, 0.1]}, "trials": 3, **search}
    return cfg


def test_a_study_runs_trials_writes_best_yaml_and_resumes(make_tiny_config, tmp_path):
    cfg = search_config(make_tiny_config, tmp_path, pruner="none")
    result = tuneforge.tune(cfg, output_dir=tmp_path / "tune", progress=False)
    folder = tmp_path / "tune"
    trials = result.study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:  # each trial is a real run with the sampled values, scored on validation
        run_cfg = load_config(TrainConfig, path=folder / f"trial-{t.number:03d}" / "config.yaml")
        assert run_cfg.train.learning_rate == pytest.approx(t.params["train.learning_rate"])
        assert 1e-4 <= run_cfg.train.learning_rate <= 1e-2
        assert run_cfg.train.weight_decay == t.params["train.weight_decay"]
        metrics = json.loads((folder / f"trial-{t.number:03d}" / "metrics.json").read_text())
        assert t.value == pytest.approx(metrics["validation.macro_f1"])
    assert result.best_value == max(t.value for t in trials)
    best = load_config(TrainConfig, path=folder / "best.yaml")  # ready to train: no search, no output_dir
    assert best.search is None and best.output_dir is None and best.name == "tiny"
    assert best.train.learning_rate == pytest.approx(result.best_params["train.learning_rate"])
    assert json.loads((folder / "best.json").read_text())["trial"] == result.study.best_trial.number
    assert (folder / "tune.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "trials.md").read_text().count("| complete |") == 3
    # resuming continues the same study up to the new total
    again = tuneforge.tune(None, trials=4, resume=folder, progress=False)
    assert len(again.study.get_trials()) == 4
    with pytest.raises(TuneforgeError, match="continue that study with `tuneforge tune --resume"):
        tuneforge.tune(cfg, output_dir=folder, progress=False)  # a new study into this one's folder


class PruneTrialOneAtItsSecondEval(optuna.pruners.BasePruner):
    """A forced pruner: which trial is bad must not depend on what a tiny random model happens to learn."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1 and len(trial.intermediate_values) >= 2


def test_a_pruned_trial_stops_at_an_evaluation_and_the_study_goes_on(make_tiny_config, tmp_path):
    cfg = search_config(make_tiny_config, tmp_path, trials=3)
    result = tuneforge.tune(cfg, output_dir=tmp_path / "tune", progress=False, pruner=PruneTrialOneAtItsSecondEval())
    trials = result.study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert len(trials[0].intermediate_values) == 3  # every evaluation was reported to Optuna
    # the reported values are the run's own validation metric at each evaluation
    log = [json.loads(line) for line in (tmp_path / "tune" / "trial-000" / "log.jsonl").read_text().splitlines()]
    assert list(trials[0].intermediate_values.values()) == pytest.approx(
        [r["macro_f1"] for r in log if r.get("type") == "eval"])
    assert sorted(trials[1].intermediate_values) == [0, 1]  # stopped at its second evaluation, not at the end
    run = json.loads((tmp_path / "tune" / "trial-001" / "run.json").read_text())
    assert run["status"] == "pruned" and "PruneTrialOneAtItsSecondEval at evaluation 2" in run["error"]
    assert not (tmp_path / "tune" / "trial-001" / "model").exists()
    assert "| 1 | pruned | (" in (tmp_path / "tune" / "trials.md").read_text()
    assert json.loads((tmp_path / "tune" / "best.json").read_text())["trial"] in (0, 2)


def test_the_median_pruner_follows_the_search_settings():
    from tuneforge.tune.config import SearchConfig
    from tuneforge.tune.study import build_pruner

    def study_with(pruner, finished: list[list[float]]):
        study = optuna.create_study(direction="maximize", pruner=pruner)
        for values in finished:
            study.add_trial(optuna.trial.create_trial(value=values[-1], intermediate_values=dict(enumerate(values))))
        return study

    search = SearchConfig(space={"train.learning_rate": [1e-3]}, startup_trials=2, warmup_evals=1)
    finished = [[0.5, 0.6, 0.7], [0.6, 0.7, 0.8]]
    for evals, values, pruned in [(1, [0.1], False),        # within warmup_evals: never pruned
                                  (2, [0.1, 0.2], True),    # below the median at evaluation 1
                                  (2, [0.1, 0.9], False)]:  # above it
        study = study_with(build_pruner(search), finished)
        trial = study.ask()
        for step, value in enumerate(values):
            trial.report(value, step)
        assert bool(trial.should_prune()) is pruned, (evals, values)
    # before startup_trials trials have finished nothing is pruned; pruner: none never prunes
    trial = study_with(build_pruner(search), finished[:1]).ask()
    trial.report(0.0, 0), trial.report(0.0, 1)
    assert not trial.should_prune()
    trial = study_with(build_pruner(search.model_copy(update={"pruner": "none"})), finished).ask()
    trial.report(0.0, 0), trial.report(0.0, 1)
    assert not trial.should_prune()


def test_field_paths_may_sit_directly_in_the_search_section(make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "x")
    cfg["method"] = {"name": "lora", "r": 4}
    cfg["search"] = {"train.learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}, "method.r": [4, 8, 16],
                     "trials": 5}
    search = load_config(TrainConfig, data=cfg).search
    assert set(search.space) == {"train.learning_rate", "method.r"} and search.trials == 5
    assert search.space["train.learning_rate"].log and search.space["method.r"] == [4, 8, 16]
    cfg["search"] = {"learning_rate": [1e-3]}
    with pytest.raises(TuneforgeError, match="written as its path, e.g. train.learning_rate"):
        load_config(TrainConfig, data=cfg)
    cfg["search"] = {"trails": 3, "space": {"method.r": [4]}}
    with pytest.raises(TuneforgeError, match='unknown key "search.trails". Did you mean "trials"'):
        load_config(TrainConfig, data=cfg)


def test_a_misspelled_path_names_the_closest_field(make_tiny_config, tmp_path):
    cfg = search_config(make_tiny_config, tmp_path)
    cfg["search"]["space"] = {"train.learnin_rate": {"low": 1e-4, "high": 1e-2}, "method.name": ["lora", "nope"]}
    with pytest.raises(TuneforgeError) as info:
        tuneforge.tune(cfg, output_dir=tmp_path / "tune", progress=False)
    message = str(info.value)
    assert "2 problem(s)" in message and 'search.space["train.learnin_rate"]' in message
    assert 'Did you mean "learning_rate"' in message
    assert 'search.space["method.name"] = "nope"' in message
    assert not (tmp_path / "tune").exists()  # nothing is written before the space is valid


@pytest.mark.parametrize("what", ["folder", "file"])
def test_an_output_that_is_not_a_tune_folder_is_not_offered_resume(make_tiny_config, tmp_path, what):
    """It said to continue the study with --resume, which refuses a folder without study.db and config.yaml."""
    cfg, target = search_config(make_tiny_config, tmp_path), tmp_path / "mine"
    if what == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("keep me", encoding="utf-8")
    else:
        target.write_text("keep me", encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        tuneforge.tune(cfg, output_dir=target, progress=False)
    message = str(info.value)
    assert "--resume" not in message and "Choose another --output (a new or empty folder)" in message
    assert ("it is not a tune folder (no study.db and config.yaml in it)" if what == "folder" else
            f"{target} is a file, not a folder") in message
    assert (target / "notes.txt" if what == "folder" else target).read_text(encoding="utf-8") == "keep me"


def test_search_section_is_typed_and_train_ignores_it(make_tiny_config, tmp_path):
    cfg = search_config(make_tiny_config, tmp_path)
    cfg["search"]["space"]["train.warmup"] = {"low": 0.2, "high": 0.1}
    with pytest.raises(TuneforgeError, match="low .* must be below high"):
        load_config(TrainConfig, data=cfg)
    cfg = search_config(make_tiny_config, tmp_path)
    cfg["search"]["pruner"] = "mediam"
    with pytest.raises(TuneforgeError, match="median"):
        load_config(TrainConfig, data=cfg)
    no_search = make_tiny_config(tmp_path / "x")
    with pytest.raises(TuneforgeError, match="no search: section"):
        tuneforge.tune(no_search, output_dir=tmp_path / "t", progress=False)


def test_tune_cli(make_tiny_config, tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.yaml"
    cfg = search_config(make_tiny_config, tmp_path, pruner="none")
    cfg["search"]["space"] = {"train.learning_rate": [1e-3, 5e-3]}
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(sys, "argv", ["tuneforge", "tune", str(path), "--trials", "1", "--output",
                                      str(tmp_path / "tune"), "train.max_steps=4"])
    with pytest.raises(SystemExit) as info:
        main()
    assert (info.value.code or 0) == 0
    printed = capsys.readouterr().out
    assert "best validation macro_f1" in printed and "tuneforge train" in printed
    assert load_config(TrainConfig, path=tmp_path / "tune" / "best.yaml").train.max_steps == 4


def test_trials_share_one_mlflow_experiment_in_the_tune_folder(make_tiny_config, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    cfg = search_config(make_tiny_config, tmp_path, pruner="none", trials=2)
    cfg["train"]["max_steps"] = 4
    cfg["tracking"] = {"mlflow": True}
    tuneforge.tune(cfg, output_dir=tmp_path / "tune", progress=False)
    client = MlflowClient(f"sqlite:///{(tmp_path / 'tune' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("tune-tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["train.learning_rate"] for r in runs) == sorted(
        str(load_config(TrainConfig, path=tmp_path / "tune" / f"trial-00{i}" / "config.yaml").train.learning_rate)
        for i in range(2))
    assert not (tmp_path / "tune" / "trial-000" / "mlflow").exists()  # artifacts sit next to the database
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {"config.yaml", "metrics.json"}
    assert experiment.artifact_location == (tmp_path / "tune" / "artifacts").resolve().as_uri()


def test_resume_takes_overrides_and_refuses_a_space_the_study_cannot_keep(make_tiny_config, tmp_path, monkeypatch,
                                                                           capsys):
    """`tuneforge tune --resume DIR key=value` took the override for a config file ('the config file comes first');
    a resumed study whose choices or log scale changed died with Optuna's ValueError traceback at the next trial."""
    cfg = search_config(make_tiny_config, tmp_path, pruner="none", trials=1)
    cfg["train"]["max_steps"] = 2
    folder = tmp_path / "tune"
    tuneforge.tune(cfg, output_dir=folder, progress=False)

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "tune", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        return info.value.code or 0, capsys.readouterr().err

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    code, err = cli(config, "--resume", folder, "--trials", "1", "--quiet")  # was: the config silently ignored
    assert code == 2 and "Give a config or --resume, not both" in err
    code, err = cli("--resume", folder, "train.max_steps=3", "--trials", "1", "--quiet")
    assert code == 0, err
    assert load_config(TrainConfig, path=folder / "config.yaml").train.max_steps == 3
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    saved["search"]["space"]["train.weight_decay"] = [0.0, 0.1, 0.2]
    saved["search"]["space"]["train.learning_rate"]["log"] = False
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    before = (folder / "config.yaml").read_text()
    code, err = cli("--resume", folder, "--trials", "2", "--quiet")
    assert code == 2 and "Traceback" not in err
    assert 'search.space["train.weight_decay"] is now the choices [0.0, 0.1, 0.2]; the study sampled the choices ' \
           "[0.0, 0.1]" in err
    assert 'search.space["train.learning_rate"] is now numbers from 0.0001 to 0.01; the study sampled numbers from ' \
           "0.0001 to 0.01 on a log scale" in err
    assert (folder / "config.yaml").read_text() == before  # the refused resume changed nothing
    assert len(optuna.load_study(study_name="tuneforge", storage=f"sqlite:///{folder / 'study.db'}").trials) == 1
    with pytest.raises(TuneforgeError, match=r"is a tune folder \(tuneforge tune\) .*best.yaml"):
        tuneforge.load(folder)  # the folder of the study, where a trial's run was wanted


def test_an_output_that_is_or_sits_in_a_file(make_tiny_config, tmp_path):
    """--output inside a file was a NotADirectoryError traceback; a file was 'already exists and is not empty ...
    continue that study with --resume'."""
    cfg = search_config(make_tiny_config, tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TuneforgeError, match="notes.txt is a file, so no folder can be made inside it"):
        tuneforge.tune(cfg, output_dir=tmp_path / "notes.txt" / "tune", progress=False)
    with pytest.raises(TuneforgeError, match="notes.txt is a file, not a folder"):
        tuneforge.tune(cfg, output_dir=tmp_path / "notes.txt", progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"
