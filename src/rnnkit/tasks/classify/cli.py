"""`rnnkit classify train | eval | predict`: labelled series to a trained classifier and an honest accuracy."""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...distributed import World, pick_device
from ...models import Pooling
from ...runs import RunDir, check_output, register_run_files, save_json
from ...spec import RNNSpec
from ...training import Trainer, best_record
from .. import options
from ..common import (
    Prepared,
    TaskRecipe,
    add_switch,
    add_train_options,
    bptt_bytes,
    budget_given,
    check_memory,
    command_deadline,
    fingerprint,
    read_run,
    register_task,
    report_result,
    run_verb,
    task_verbs,
    train_config,
    train_task,
    warn,
)
from . import data
from .files import plot_confusion, write_predictions
from .model import Ensemble
from .task import (
    ClassifyTask,
    Encoded,
    build_model,
    encode,
    evaluate_test,
    fit_scaler,
    load_test,
    load_training,
    predict_proba,
)

TASK = "classify"
REFIT, CONFUSION, PREDICTIONS = "refit.json", "confusion.png", "predictions.csv"
register_run_files(REFIT, CONFUSION)
# The best of benchmarks/classify.py (see the README).
DEFAULTS = {
    "cell": "lstm",
    "hidden": 128,
    "layers": 1,
    "batch_size": 16,
    "lr": 1e-3,
    "eval_every": 50,
    "dropout": 0.1,
}
DEFAULT_POOLING = "last"
DEFAULT_CONV = True
DEFAULT_REFIT = True
DEFAULT_ENSEMBLE = 3
# The budget when none is given: this many passes over the training part, within these bounds.
# On ArrowHead (29 training series) 4000 steps beat 1000 on validation (mean error over 3 seeds
# 0.0001 against 0.056; benchmarks/results/classify_arrowhead_budget.json).
# AUTO_MINUTES bounds the whole command; phase one gets 40% of it with the default ensemble of 3
# (5 minutes, the cap that the benchmark's runs had).
AUTO_EPOCHS, AUTO_MIN_STEPS, AUTO_MAX_STEPS, AUTO_MINUTES = 1000, 2000, 8000, 12.5


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(
        subparsers, TASK, "time-series classification: one label per series (many-to-one)"
    )

    p = verbs.add_parser("train", help="train a classifier; prints the test table at the end")
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        help="a UCR/UEA set shipped with sktime (GunPoint, ItalyPowerDemand, ArrowHead, "
        "BasicMotions, JapaneseVowels, ...; pip install 'rnnkit[classify]')",
    )
    g.add_argument("--train", type=options.path, help="training series: a .ts, .npz or CSV file")
    g.add_argument("--test", type=options.path, help="test series, in the same form as --train")
    g.add_argument(
        "--label-col", default="label", help="the label column of a CSV file (default label)"
    )
    g.add_argument(
        "--znorm", action="store_true", help="z-normalise every series (each channel) on its own"
    )
    g.add_argument(
        "--val-fraction",
        type=options.fraction(),
        default=0.2,
        help="share of each class held out of training for validation (default 0.2)",
    )
    g = p.add_argument_group("classifier")
    g.add_argument(
        "--pooling",
        choices=Pooling.KINDS,
        default=DEFAULT_POOLING,
        help=f"how the RNN's outputs become one vector (default {DEFAULT_POOLING})",
    )
    add_switch(g, "conv", DEFAULT_CONV, "a convolutional branch beside the RNN, as in LSTM-FCN",
               "the RNN alone (purely recurrent)")  # fmt: skip
    add_switch(g, "refit", DEFAULT_REFIT, "after early stopping, train afresh on every training "
               "series (validation part included) for as many steps as the best validation score "
               "took", "keep the weights chosen on the validation part")  # fmt: skip
    g.add_argument(
        "--ensemble",
        type=options.count(1, 64),
        metavar="K",
        help="refit K models from seeds SEED, SEED+1, ... and average their class probabilities "
        f"(default {DEFAULT_ENSEMBLE}; 1 with --no-refit)",
    )
    add_train_options(p, **DEFAULTS)
    p.set_defaults(run=train)

    p = run_verb(verbs, "eval", "accuracy, macro F1 and confusion on the test set, baselines",
                 evaluate, json_flag=True)  # fmt: skip
    options.add_device(p)
    p = run_verb(verbs, "predict", "labels and class probabilities for new series, as CSV", predict)
    p.add_argument(
        "--input",
        required=True,
        type=options.path,
        help="series: a .ts, .npz or CSV file (labels optional)",
    )
    p.add_argument("--out", type=options.path, help="CSV to write (default RUN/predictions.csv)")
    options.add_device(p)


def source_config(args: argparse.Namespace) -> dict:
    if args.dataset and (args.train or args.test):
        raise ValueError("give --dataset or --train/--test, not both")
    if args.dataset:
        return {"kind": "named", "name": args.dataset}
    if not (args.train and args.test):
        raise ValueError("give --dataset NAME (a UCR/UEA set) or both --train FILE and --test FILE")
    return {
        "kind": "files",
        "train": str(Path(args.train).resolve()),
        "test": str(Path(args.test).resolve()),
        "label_col": args.label_col,
    }


def auto_budget(args: argparse.Namespace, steps_per_epoch: int) -> str:
    """Without --steps, --epochs or --minutes, a budget that grows with the data set."""
    if not budget_given(args):
        args.steps = min(AUTO_MAX_STEPS, max(AUTO_MIN_STEPS, AUTO_EPOCHS * steps_per_epoch))
        args.minutes = AUTO_MINUTES
        return f"{args.steps} steps, at most {AUTO_MINUTES:g} minutes in all"
    return "as given"


def phase_one_share(args: argparse.Namespace) -> float:
    """The share of --minutes for early stopping; the refits get the rest.

    A refit takes as many steps as the best validation score did, at most
    phase one's: with K members, K/2 refits of a whole phase one fit in the rest.
    """
    return 1.0 / (1.0 + args.ensemble / 2.0) if args.refit else 1.0


def resumed_options(saved: dict) -> dict:
    """A classify run's data options, as --resume takes them from its config."""
    source = saved["source"]
    if source["kind"] == "named":
        return {"dataset": source["name"], "train": None, "test": None}
    return {"dataset": None, "train": source["train"], "test": source["test"],
            "label_col": source.get("label_col", "label")}  # fmt: skip


class ClassifyRecipe(TaskRecipe):
    """Time-series classification: what the classify task plugs into the shared train sequence."""

    name = TASK
    metric_name = "validation error"

    resumed_options = staticmethod(resumed_options)

    def check_options(self, args: argparse.Namespace) -> None:
        if args.refit and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("--refit trains in one process; run it without torchrun")
        if args.ensemble is None:
            args.ensemble = DEFAULT_ENSEMBLE if args.refit else 1
        if args.ensemble > 1 and not args.refit:
            raise ValueError(
                "--ensemble refits its members on every training series: drop --no-refit"
            )

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        source = source_config(args)
        config = {"task": TASK, "source": source}
        print(f"classify: reading {data.describe_source(source)}", flush=True)
        training = load_training(config)
        data.check_training(training)
        test = load_test(config)  # read now so that a bad file stops us before a run exists
        data.check_compatible(training, test)
        fit_part, val_part = data.stratified_split(training.labels, args.val_fraction, args.seed)
        if len(val_part) == 0:
            raise ValueError(
                "no class has two training series, so none can be held out for validation: "
                "give at least two series of one class or more"
            )
        fitted = training.subset(fit_part)
        config.update(
            classes=training.classes,
            channels=training.channels,
            znorm=args.znorm,
            val_fraction=args.val_fraction,
            pooling=args.pooling,
            conv=args.conv,
            **spec.to_config(),
            batch_size=args.batch_size,
            seed=args.seed,
            refit=args.refit,
            ensemble=args.ensemble,
        )
        config["scaler"] = fit_scaler(data.z_normalise(fitted) if args.znorm else fitted)
        config["data_fingerprint"] = fingerprint(
            *training.series, training.labels, *test.series, test.labels
        )
        comparable = tuple(k for k in config if k not in ("task", "scaler"))
        lengths = training.lengths
        batch = min(args.batch_size, len(fit_part))
        check_memory(
            bptt_bytes(args, batch, int(lengths.max()), convolution=args.conv),
            f"a batch of {batch} series of {int(lengths.max()):,} steps",
            "lower --batch-size or --hidden, or cut the series shorter",
        )
        task = ClassifyTask(encode(fitted, config), encode(training.subset(val_part), config),
                            config)  # fmt: skip
        task.expect_test(encode(test, config), training, reserve=not args.refit)
        steps_per_epoch = max(1, math.ceil(len(fit_part) / task.batches.batch))
        budget = auto_budget(args, steps_per_epoch)
        span = f"{lengths.min()}{'' if lengths.min() == lengths.max() else f'-{lengths.max()}'}"
        headline = (
            f"classify {training.source}: {len(training)} training series ({len(fit_part)} train, "
            f"{len(val_part)} validation), {len(test)} test, {len(training.classes)} classes, "
            f"{training.channels} channel{'s' * (training.channels != 1)}, length {span}; "
            f"{spec.cell}{' bidirectional' if spec.bidirectional else ''} {spec.hidden}, pooling "
            f"{args.pooling}{', conv branch' if args.conv else ''}; budget {budget}"
        )
        return Prepared(config, task, steps_per_epoch, headline, comparable,
                        training_share=phase_one_share(args),
                        state={"training": training, "test": test})  # fmt: skip

    def build_model(self, config: dict) -> nn.Module:
        return build_model(config, members=1)

    def trained_model(self, run: RunDir, config: dict, device: str | None = None) -> nn.Module:
        """The run's final weights: the refit ensemble when the refit finished, else the selected model."""
        members = config.get("ensemble", 1) if run.file(REFIT).exists() else 1
        model = build_model(config, members)
        run.load_weights(model)
        return model.to(pick_device(device, World()))

    def after_training(self, run: RunDir, model, prepared: Prepared, args, result: dict) -> None:
        config, training, test = prepared.config, prepared.state["training"], prepared.state["test"]
        if args.refit:
            refit(run, config, encode(training, config), args, prepared.task)
        model = self.trained_model(run, config, "cpu")
        print(f"scoring the {len(test)} test series and the baselines", flush=True)
        report(test_result(model.cpu(), run, config, training, test), config)


RECIPE = register_task(ClassifyRecipe())


def train(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


def refit(
    run: RunDir, config: dict, everything: Encoded, args: argparse.Namespace, phase_one
) -> nn.Module:
    """Fresh models trained on all training series for the best evaluation's step count.

    One per ensemble member, from seeds ``seed``, ``seed + 1``, ...; their
    final weights replace the selected ones (the validation part can no
    longer judge them); ``refit.json`` records the steps. Under --minutes
    each member gets an equal share of what is left after the test; a member
    that runs out of time ends early (its schedule follows the clock).
    """
    steps = best_record(run.read_metrics(), ClassifyTask.monitor)["step"]
    train_cfg = replace(
        train_config(args, 1), steps=steps, minutes=None, eval_every=steps, patience=0
    )
    device = pick_device(args.device, World())
    deadline = command_deadline(args)
    members = []
    for seed in range(args.seed, args.seed + args.ensemble):
        left = args.seed + args.ensemble - seed
        own = None
        if deadline is not None:
            spare = deadline - time.monotonic() - phase_one.test_seconds()
            own = time.monotonic() + max(0.0, spare) / left
        torch.manual_seed(seed)
        member = build_model(config, members=1)
        # its evaluation is never used to select
        task = ClassifyTask(everything, everything, {**config, "seed": seed})
        print(f"refit {seed - args.seed + 1}/{args.ensemble}: {steps} steps on all "
              f"{len(everything.y)} training series", flush=True)  # fmt: skip
        Trainer(member, task, train_cfg, device=device, quiet=True, deadline=own).fit()
        members.append(member.cpu())
    model = members[0] if len(members) == 1 else Ensemble(members)
    run.save_weights(model)
    save_json(
        run.file(REFIT),
        {"steps": steps, "series": int(len(everything.y)), "members": len(members)},
    )
    ensemble = f" ({len(members)} members)" if len(members) > 1 else ""
    print(f"refit on all {len(everything.y)} training series for {steps} steps{ensemble}")
    return model


def test_result(model, run: RunDir, config: dict, training, test) -> dict:
    """Score the test set once, write the confusion PNG, and return the JSON of ``eval``."""
    result = evaluate_test(
        model, encode(training, config), encode(test, config), len(config["classes"])
    )
    result["classes"] = config["classes"]
    plot_confusion(run.file(CONFUSION), np.array(result["confusion"]), config["classes"])
    return result


def report(result: dict, config: dict) -> None:
    print(f"test set, {result['test_series']} series, {len(config['classes'])} classes:")
    print(f"{'':12s} {'accuracy':>9s} {'macro F1':>9s}")
    rows = [("model", result)] + list(result["baselines"].items())
    for name, m in rows:
        print(f"{name:12s} {m['accuracy']:9.4f} {m['macro_f1']:9.4f}")


def evaluate(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    model = RECIPE.trained_model(run, config, args.device)
    training, test = load_training(config), load_test(config)
    result = test_result(model, run, config, training, test)
    return report_result(args, result, lambda r: report(r, config))


def predict(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    source = config["source"]
    out = check_output(run, args.out or run.file(PREDICTIONS),
                       inputs=(args.input, source.get("train"), source.get("test")))  # fmt: skip
    label_col = config["source"].get("label_col", "label")
    series = data.read_file(args.input, label_col, need_labels=False)
    if series.channels != config["channels"]:
        raise ValueError(
            f"{args.input} has {series.channels} channels, the run was trained on {config['channels']}"
        )
    model = RECIPE.trained_model(run, config, args.device)
    proba = predict_proba(model, encode(series, config, labelled=False))
    write_predictions(out, proba, config["classes"], series.labels)
    labelled = series.labels != ""
    foreign = sorted(set(series.labels[labelled].tolist()) - set(config["classes"]))
    if foreign:
        warn(f"{args.input} has labels the model does not know ({', '.join(map(repr, foreign[:5]))}); "
             f"its classes are {', '.join(map(repr, config['classes'][:10]))}: those series "
             "are left out of the accuracy")  # fmt: skip
        labelled &= np.isin(series.labels, config["classes"])
    line = f"{len(series)} series -> {out}"
    if labelled.any():
        predicted = np.array(config["classes"])[proba.argmax(1)]
        hits = (predicted[labelled] == series.labels[labelled]).mean()
        line += f"; accuracy on the {int(labelled.sum())} labelled: {hits:.4f}"
    print(line)
    return 0
