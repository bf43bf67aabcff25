"""Mixed precision for one trained model: the layers its int8 file loses most in (`edge-fer debug precision` on the
validation split) kept in fp32, most harmful first, as `tflite-mixed` files; then ONE bench run of the full int8
file, the fp32 file and every mixed one (validation and test accuracy, p50 in interleaved rounds), each mixed
file's prediction flips against fp32, and which candidate the search rule takes: the first (fewest fp32 layers)
whose validation accuracy is within --tolerance of fp32 and whose p50 fits --max-p50-ms.

    python benchmarks/mixed_search.py --model benchmarks/ferplus/vote \
        --int8 benchmarks/ferplus/vote/model-tflite-int8.tflite --root ../shared/datasets/ferplus \
        --keep 1 2 4 8 --out runs/mixed-vote --store benchmarks/ferplus/mixed.sqlite

Writes the files under OUT/float/ and OUT/keep-N/, and RESULTS/search.json, RESULTS/search.md and a report of
the store in RESULTS/report/ (RESULTS is --results, default OUT).
Time it on a quiet machine: the bench is one run, its p50s compare with each other only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer import atomic  # noqa: E402
from edge_fer.data.spec import DatasetSpec  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402
from edge_fer.report.tables import flips  # noqa: E402

TOP_LAYERS_ASKED = 8


def ranked_layers(int8: Path, model: Path, spec: DatasetSpec, images: int, out: Path) -> list[str]:
    """The Keras layers, most added quantization noise first (the model's output itself left out)."""
    from edge_fer.debug.precision import LayerRow, debug_precision, ranked
    from edge_fer.debug.taps import OUTPUT_KEY

    valid = spec.load().splits["valid"]
    result = debug_precision(int8, model, valid.images[:images], out / "debug")
    rows = ranked([LayerRow(**row) for row in result["layers"]])
    return list(dict.fromkeys(row.layer for row in rows if row.layer != OUTPUT_KEY and row.added_noise > 0))


def export_candidates(model: Path, layers: list[str], keeps: list[int], spec: DatasetSpec, out: Path) -> list[Path]:
    from edge_fer.export.exporter import ExportSettings, export

    files = []
    for folder, formats, keep in [(out / "float", "tflite-fp32", [])] + [(out / f"keep-{n}", "tflite-mixed", layers[:n])
                                                                         for n in keeps]:
        results = export(model, folder, ExportSettings(formats=formats, keep_float=keep), dataset_override=spec)
        if results[0]["status"] != "passed":
            raise SystemExit(f"error: {formats} with {keep} did not pass its check: {results[0].get('reason')}")
        files.append(Path(results[0]["path"]))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="the trained float model folder")
    parser.add_argument("--int8", required=True, type=Path, help="its full int8 TFLite file")
    parser.add_argument("--dataset", default="ferplus")
    parser.add_argument("--root", default="../shared/datasets/ferplus")
    parser.add_argument("--keep", type=int, nargs="+", default=[1, 2, 4, 8], help="how many layers to keep in fp32")
    parser.add_argument("--debug-images", type=int, default=200, help="validation images the debugger compares on")
    parser.add_argument("--tolerance", type=float, default=0.005, help="validation accuracy below fp32 the rule allows")
    parser.add_argument("--max-p50-ms", type=float, default=float("inf"), help="the latency budget of the rule")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--store", required=True, type=Path, help="the results store the bench run is added to")
    parser.add_argument("--results", type=Path, help="folder for search.json, search.md and the report (default --out)")
    args = parser.parse_args()
    if not args.int8.is_file() or not args.model.exists():
        raise SystemExit("error: --model and --int8 must exist")
    if not all(1 <= n <= TOP_LAYERS_ASKED * 4 for n in args.keep):
        raise SystemExit(f"error: --keep counts go from 1 to {TOP_LAYERS_ASKED * 4}")
    from edge_fer.bench import store
    from edge_fer.bench.runner import BenchSettings, bench
    from edge_fer.evaluate import wilson_interval
    from edge_fer.report import build_report

    spec = DatasetSpec.of({"dataset": args.dataset, "root": args.root or None})
    results = args.results or args.out
    for folder in (args.out, results):
        folder.mkdir(parents=True, exist_ok=True)
    layers = ranked_layers(args.int8, args.model, spec, args.debug_images, args.out)
    files = [args.int8, *export_candidates(args.model, layers, sorted(set(args.keep)), spec, args.out)]
    settings = BenchSettings(min_duration_s=5.0, rounds=args.rounds, store=str(args.store))
    rows = bench(files, "host-cpu", settings, spec)
    by_path = {Path(row["artifact"]).resolve(): row for row in rows}
    reference = by_path[files[1].resolve()]
    table = []
    for path in files:
        row = by_path[path.resolve()]
        keep = json.loads(path.with_name(path.name + ".json").read_text()).get("keep_float") if path != args.int8 else []
        test = row["metrics"]["scores"]
        table.append({"file": str(path), "format": row["format"], "keep_float": keep, "status": row["status"],
                      "valid": row["metrics"]["scores_valid"]["accuracy"], "test": row["accuracy"],
                      "test_interval_95": wilson_interval(row["accuracy"], test["count"]),
                      "flips_vs_fp32_valid": flips(row, reference, "scores_valid"), "flips_vs_fp32_test": flips(row, reference),
                      "ece_test": test.get("ece"), "vote_kl_test": test.get("vote_kl"),
                      "p50_ms": row["p50_ms"], "size_bytes": row["size_bytes"], "run_id": row["run_id"]})
    fp32_valid = table[1]["valid"]
    chosen = next((entry for entry in table if entry["format"] != "tflite-fp32" and entry["valid"] >= fp32_valid - args.tolerance
                   and entry["p50_ms"] <= args.max_p50_ms), None)
    result = {"model": str(args.model), "ranked_layers": layers, "tolerance": args.tolerance, "max_p50_ms": args.max_p50_ms,
              "rows": table, "chosen": chosen and chosen["file"], "store": str(args.store)}
    atomic.write_json(results / "search.json", result)
    build_report(args.store, results / "report", commands=[" ".join(["python", *sys.argv])])
    lines = [f"Mixed precision for `{args.model}`: the layers its int8 file loses most in, kept in fp32 (most harmful "
             f"first: {', '.join(layers[:max(args.keep)])}), all benched in one run (`{rows[0]['run_id']}`, host-cpu, "
             f"{args.rounds} interleaved rounds). Flips: the share of images whose top class differs from the fp32 "
             "file's; ECE: expected calibration error; KL: the mean KL divergence from the 10 annotators' vote "
             "distribution to the file's probabilities (nats). Produced by:", "", "    " + " ".join(["python", *sys.argv]), "",
             "| file | fp32 layers | valid | test | test 95% | flips vs fp32 (test) | ECE (test) | KL to votes (test) | p50 ms | size MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in table:
        kept = "all" if entry["format"] == "tflite-fp32" else (", ".join(entry["keep_float"]) or "none")
        low, high = entry["test_interval_95"]
        flip, ece, kl = ("-" if entry[key] is None else f"{entry[key]:.4f}"
                         for key in ("flips_vs_fp32_test", "ece_test", "vote_kl_test"))
        lines.append(f"| `{Path(entry['file']).parent.name}/{Path(entry['file']).name}` | {kept} | {entry['valid']:.4f} | "
                     f"{entry['test']:.4f} | {low:.3f}-{high:.3f} | {flip} | {ece} | {kl} | {entry['p50_ms']:.3f} | "
                     f"{entry['size_bytes'] / 1e6:.2f} |")
    lines += ["", f"The rule (validation accuracy within {args.tolerance} of fp32's, p50 within the budget, fewest fp32 "
              f"layers first) takes: `{chosen['file'] if chosen else 'nothing'}`."]
    atomic.write_text(results / "search.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    store.require(args.store)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
