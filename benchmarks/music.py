"""Music targets (issue 8), as a benchmark: JSB Chorales NLL, and genre conditioning.

    python benchmarks/music.py                      # both parts
    python benchmarks/music.py --part jsb --outputs bernoulli,made
    python benchmarks/music.py --part genres --conditions both

Part ``jsb``: the JSB Chorales benchmark file (../shared/data/JSB_Chorales.mat,
its standard split, quarter-note steps) with each key distribution
(independent Bernoulli keys, MADE, NADE), the CLI defaults otherwise, at most
--steps steps and --minutes minutes of training each on this machine. Test
NLL per step in nats (the steps after each piece's first: 4,648 of them),
frame accuracy, and the baselines. Skipped, saying so, without the file.

Part ``genres``: the music21 corpus (the music extra), --genres at most
--max-pieces pieces each, eighth-note steps; one genre model per
--conditions (init, input, both); for each genre, the NLL per step of its
held-out pieces conditioned on every genre, and the margin (best wrong genre
minus right genre). The first run parses the scores (minutes); later runs
read the cache. Writes benchmarks/results/music.json, and a generated
piece's MIDI and piano roll under docs/music/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from harness import rnnkit, write_result

HERE = Path(__file__).resolve().parent
JSB = HERE.parent.parent / "shared" / "data" / "JSB_Chorales.mat"
DOCS = HERE.parent / "docs" / "music"
PUBLISHED = {  # test NLL per step on JSB Chorales, nats
    "LSTM (Bai, Kolter and Koltun 2018)": 8.45,
    "GRU (Bai et al. 2018)": 8.43,
    "vanilla RNN (Bai et al. 2018)": 8.91,
    "TCN (Bai et al. 2018)": 8.10,
    "RNN-NADE (Boulanger-Lewandowski et al. 2012)": 5.56,
}


def train_run(out: Path, argv: list, budget: argparse.Namespace) -> dict:
    started = time.perf_counter()
    rnnkit("music", "train", *argv, "--steps", budget.steps, "--minutes", budget.minutes,
           "--seed", budget.seed, "--out", out, echo=True)  # fmt: skip
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((out / "test.json").read_text())
    result.pop("key_marginals", None)
    best = min(metrics, key=lambda m: m["val_nll"])
    result["test_steps"] = result.pop("steps")
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "train_seconds": metrics[-1]["time"],
        "train_steps": metrics[-1]["step"],
        "best_val_nll": best["val_nll"],
        "best_step": best["step"],
        **result,
    }


def jsb_part(args, work: Path) -> list[dict]:
    if not JSB.exists():
        print(f"skipping the JSB part: {JSB} is not here (it is benchmark data, not shipped)")
        return []
    runs = []
    for output in args.outputs.split(","):
        r = train_run(work / f"jsb-{output}", ["--data", JSB, "--output", output], args)
        runs.append({"output": output, **r})
        print(f"JSB {output}: test NLL {r['nll']:.3f}, frame accuracy {r['frame_accuracy']:.3f}, "
              f"{r['train_seconds']:.0f} s", flush=True)  # fmt: skip
    return runs


def genres_part(args, work: Path) -> list[dict]:
    runs = []
    for condition in args.conditions.split(","):
        out = work / f"genres-{condition}"
        r = train_run(out, ["--genres", args.genres, "--max-pieces", args.max_pieces,
                            "--condition", condition], args)  # fmt: skip
        runs.append({"condition": condition, **r})
        if condition == args.conditions.split(",")[0]:
            DOCS.mkdir(parents=True, exist_ok=True)
            for genre in args.genres.split(","):
                rnnkit("music", "generate", out, "--genre", genre, "--steps", 128, "--seed", 0,
                       "--out", DOCS / f"generated-{genre}.mid", echo=True)  # fmt: skip
            shutil.copy(out / "curves.png", DOCS / "genre_training_curves.png")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "jsb", "genres"), default="all")
    parser.add_argument("--outputs", default="bernoulli,made,nade")
    parser.add_argument("--genres", default="bach,folk,fiddle,renaissance")
    parser.add_argument("--max-pieces", type=int, default=300)
    parser.add_argument("--conditions", default="both,init,input")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="file under benchmarks/results (default music_PART.json)")
    args = parser.parse_args()
    results = {"published": PUBLISHED, "steps": args.steps, "minutes": args.minutes}
    with tempfile.TemporaryDirectory() as work:
        if args.part in ("all", "jsb"):
            results["jsb"] = jsb_part(args, Path(work))
        if args.part in ("all", "genres"):
            results["genres"] = {
                "genres": args.genres.split(","),
                "runs": genres_part(args, Path(work)),
            }
    path = write_result(args.out or f"music_{args.part}.json", results)
    if results.get("jsb"):
        print(f"\n{'JSB Chorales':14s} {'test NLL':>9s} {'frame acc':>9s} {'train s':>8s} "
              f"{'steps':>6s} {'best at':>7s}")  # fmt: skip
        for r in results["jsb"]:
            print(f"{r['output']:14s} {r['nll']:9.3f} {r['frame_accuracy']:9.3f} "
                  f"{r['train_seconds']:8.0f} {r['train_steps']:6d} {r['best_step']:7d}")  # fmt: skip
        b = results["jsb"][0]["baselines"]
        print(f"{'key freq.':14s} {b['key frequencies']['nll']:9.3f} "
              f"{b['key frequencies']['frame_accuracy']:9.3f}")  # fmt: skip
        print(f"{'previous step':14s} {'':9s} {b['previous step']['frame_accuracy']:9.3f}")
        for name, nll in PUBLISHED.items():
            print(f"  published: {name}: {nll:.2f}")
    for r in results.get("genres", {}).get("runs", []):
        table = r["by_genre"]
        names = list(table)
        print(f"\ncondition {r['condition']}: test NLL {r['nll']:.3f}; NLL per step of each "
              "genre's test pieces (rows) given each genre (columns)")  # fmt: skip
        print(f"{'':13s}" + "".join(f"{n:>12s}" for n in names) + f"{'margin':>9s}")
        for g, row in table.items():
            print(f"{g:13s}" + "".join(f"{row['as'][n]:12.3f}" for n in names)
                  + f"{row['margin']:9.3f}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
