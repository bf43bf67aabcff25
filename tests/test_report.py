from edge_fer.report import latest_per_artifact


def row(sha, accuracy=None, p50=1.0, path="runs/x/model-tflite-fp32.tflite"):
    return {"target": "host-cpu", "artifact": path, "artifact_sha256": sha, "format": "tflite-fp32", "accuracy": accuracy,
            "macro_f1": accuracy, "dataset": "ferplus" if accuracy else None, "synthetic": False, "p50_ms": p50, "metrics": {}}


def test_a_file_exported_again_replaces_the_older_one_and_scores_stay_with_the_contents():
    older, newer = row("aaa", accuracy=0.8, p50=2.0), row("bbb", p50=1.0)
    shown = latest_per_artifact([older, newer])["host-cpu"]
    assert len(shown) == 1 and shown[0]["p50_ms"] == 1.0
    assert shown[0]["accuracy"] is None  # another file: the old file's score does not carry over

    shown = latest_per_artifact([row("aaa", accuracy=0.8), row("aaa", p50=0.5)])["host-cpu"]
    assert shown[0]["accuracy"] == 0.8 and shown[0]["p50_ms"] == 0.5  # same contents: latency-only row keeps the score

    other_path = row("ccc", accuracy=0.7, path="runs/y/model-tflite-fp32.tflite")
    assert len(latest_per_artifact([older, other_path])["host-cpu"]) == 2
