"""`edge-fer train`, `edge-fer evaluate` and `edge-fer qat`."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_dataset_flags, add_json_flag, data_table, load_dataset, print_metrics
from edge_fer.errors import UserError

TRAIN_FLAGS = {  # flag -> dotted config key
    "variant": "model.variant", "image_size": "model.image_size", "weights": "model.weights",
    "schedule": "train.schedule", "batch_size": "train.batch_size", "seed": "train.seed",
    "steps_per_epoch": "train.steps_per_epoch", "out": "out",
}


def register(commands) -> None:
    train = commands.add_parser("train", help="train a model (two-stage paper recipe or from scratch)")
    add_dataset_flags(train, what="the dataset to train on")
    train.add_argument("--config", help="TOML file with [data], [model], [train] sections (a pipeline file works too)")
    train.add_argument("--variant", help="model variant (edge-fer model list)")
    train.add_argument("--image-size", type=int, help="input size in pixels")
    train.add_argument("--weights", help="imagenet, none, or a MobileNet weights file")
    train.add_argument("--schedule", choices=["two_stage", "from_scratch"],
                       help="two_stage: the paper's head then fine-tune (ImageNet weights); from_scratch: one cosine run")
    train.add_argument("--batch-size", type=int, help="images per step (default 32)")
    train.add_argument("--seed", type=int, help="the seed of weights, shuffling and augmentation (default 0)")
    train.add_argument("--steps-per-epoch", type=int, help="cap the steps of each epoch (a short run)")
    train.add_argument("--out", help="output folder (default runs/train)")
    train.add_argument("--distribute", action="store_true", help="MirroredStrategy over every visible GPU")
    add_cluster_flags(train)
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="any config value, e.g. train.scratch.epochs=3")
    add_json_flag(train)
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="accuracy, macro-F1, per-class accuracy and confusion of a model")
    evaluate.add_argument("model", help="model.keras or its folder")
    add_dataset_flags(evaluate, required=True, image_size=True, what="the dataset to score on")
    evaluate.add_argument("--split", default="test", help="the split to score (default test)")
    add_json_flag(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    qat = commands.add_parser("qat", help="quantization-aware fine-tuning of a trained model (tfmot)")
    qat.add_argument("model", help="the trained float model (folder or model.keras)")
    add_dataset_flags(qat, what="fine-tuning data (default: the model's own dataset)")
    qat.add_argument("--config", help="TOML with QAT settings (epochs, learning_rate, batch_size, ...)")
    qat.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. epochs=2")
    qat.add_argument("--out", help="output folder (default runs/qat)")
    add_json_flag(qat)
    qat.set_defaults(run=cmd_qat)


def add_cluster_flags(parser) -> None:
    parser.add_argument("--workers", metavar="HOST:PORT,...",
                        help="train on several machines: every worker's address, the chief (task 0) first; writes TF_CONFIG")
    parser.add_argument("--task-index", type=int, metavar="N", help="this machine's place in --workers (0 = the chief)")


def apply_cluster_flags(args, data: dict) -> None:
    """--workers and --task-index: TF_CONFIG for this process, and train.distribute = 'multi_worker'."""
    from edge_fer.config import apply_override
    from edge_fer.train.distribute import cluster_from_flags

    if cluster_from_flags(args.workers, args.task_index):
        apply_override(data, "train.distribute='multi_worker'")


def train_config_from_args(args):
    from edge_fer.config import apply_override, from_dict, load_toml, set_dotted
    from edge_fer.train.config import TrainConfig

    data = load_toml(args.config) if args.config else {}
    if "name" in data or "stages" in data:  # a pipeline file: take the sections that configure training
        data = {key: data[key] for key in ("data", "model", "train") if key in data}
    given = data_table(args)
    for key, value in given.items():
        if key != "options":
            set_dotted(data, f"data.{key}", value, where=f"--{key.replace('_', '-')}")
    for key, value in given.get("options", {}).items():
        data.setdefault("data", {}).setdefault("options", {})[key] = value
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            apply_override(data, f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    if args.distribute:
        apply_override(data, "train.distribute='mirrored'")
    apply_cluster_flags(args, data)
    for text in args.set:
        apply_override(data, text)
    return from_dict(TrainConfig, data)


def cmd_train(args) -> int:
    from edge_fer.train.trainer import train

    record = train(train_config_from_args(args))
    if not record.get("chief", True):
        ui.out.print(f"worker {record['task_index']} of {record['workers']} finished; the chief (worker 0) wrote the model")
        return 0
    if args.json:
        ui.print_json(record)
    else:
        print_metrics(record["metrics"], title=f"{record['variant']} on {record['dataset']['name']}"
                      + (" (SYNTHETIC data)" if record["dataset"]["synthetic"] else ""))
        ui.out.print(f"saved {args.out or record['config']['out']}/model.keras and model.json"
                     f" (pretrained={record['pretrained']}, {record['train_seconds']} s)")
    return 0


def cmd_evaluate(args) -> int:
    from edge_fer.evaluate import classification_metrics, predict_keras
    from edge_fer.models.loading import load_model

    model, meta = load_model(args.model)
    dataset = load_dataset(args)
    if args.split not in dataset.splits:
        raise UserError(f"dataset {dataset.name} has no split {args.split!r}; it has {', '.join(dataset.splits)}")
    classes = meta.get("classes")
    if classes and list(classes) != list(dataset.classes):
        raise UserError(f"the model was trained on classes {classes}, the dataset has {list(dataset.classes)}")
    split = dataset.splits[args.split]
    image_size = int(model.input_shape[1])
    metrics = classification_metrics(split.labels, predict_keras(model, split.images, image_size), dataset.classes)
    result = {"model": str(args.model), "dataset": dataset.name, "synthetic": dataset.synthetic,
              "label_mode": dataset.label_mode, "split": args.split, **metrics}
    if args.json:
        ui.print_json(result)
        return 0
    print_metrics({args.split: metrics}, title=f"{args.model} on {dataset.display_name}")
    per_class = [[name, acc] for name, acc in metrics["per_class_accuracy"].items()]
    ui.out.print(ui.table("per-class accuracy", ["class", "accuracy"], per_class))
    ui.out.print(ui.table("confusion (rows: true, columns: predicted)", ["true", *dataset.classes],
                          [[name, *row] for name, row in zip(dataset.classes, metrics["confusion"])]))
    return 0


def cmd_qat(args) -> int:
    from edge_fer.config import apply_override, from_dict, load_toml
    from edge_fer.quantize.config import QatConfig, trained_data
    from edge_fer.quantize.qat import run_qat

    data = load_toml(args.config) if args.config else {}
    data["model"] = str(args.model)
    data["data"] = {**trained_data(args.model), **data.get("data", {}), **data_table(args)}
    if args.out:
        data["out"] = args.out
    for text in args.set:
        apply_override(data, text)
    record = run_qat(from_dict(QatConfig, data))
    if args.json:
        ui.print_json(record)
    else:
        print_metrics(record["metrics"], title=f"QAT model ({record['variant']})")
        ui.out.print(f"saved the QAT model in {data.get('out', 'runs/qat')} ({record['qat_seconds']} s)")
    return 0
