"""export.keep_float = "auto:N": the N layers the full int8 file loses most in, ranked by `debug precision` on the
validation split, resolved to layer names before the export (which sits below the debugger) runs."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from edge_fer.errors import UserError

RANKING_IMAGES = 200  # validation images the ranking compares on


def layers_by_harm(result: dict) -> list[str]:
    """The Keras layers of a `debug precision` result, the most added quantization noise first (the output left out)."""
    from edge_fer.debug.precision import LayerRow, ranked
    from edge_fer.debug.taps import OUTPUT_KEY

    rows = ranked([LayerRow(**row) for row in result["layers"]])
    return list(dict.fromkeys(row.layer for row in rows if row.layer != OUTPUT_KEY and row.added_noise > 0))


def resolve_keep_float(ctx):
    """The export settings with "auto:N" replaced by the N layers ranked first (and how they were chosen), ranked
    with the export's own context: its model, calibration images and dataset, loaded once for both."""
    from edge_fer.debug.precision import debug_precision
    from edge_fer.export import converters
    from edge_fer.export.mixed import parse_keep_float
    from edge_fer.formats import parse_formats

    settings = ctx.settings
    count = parse_keep_float(settings.keep_float)
    if isinstance(count, list) or not any(f.keeps_float for f in parse_formats(settings.formats)):
        return settings
    int8 = converters.keras_to_tflite(ctx.float_model, "int8", ctx.calibration, int8_io=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model-tflite-int8.tflite"
        path.write_bytes(int8)
        result = debug_precision(path, ctx.model_dir, ctx.raw_sample(("valid", "test"), RANKING_IMAGES), Path(folder) / "debug")
    layers = layers_by_harm(result)
    if len(layers) < count:
        raise UserError(f"export.keep_float = \"auto:{count}\": int8 adds noise in only {len(layers)} layers of this model; "
                        f"ask for at most {len(layers)}")
    chosen = {"request": f"auto:{count}", "ranked_on": f"{result['images']} validation images", "ranking": layers[:max(count, 8)]}
    return replace(settings, keep_float=layers[:count], keep_float_chosen=chosen)
