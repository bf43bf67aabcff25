"""Export formats, converters and the exporter."""
