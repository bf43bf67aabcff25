"""python -m edge_fer.cli: the edge-fer command."""

from edge_fer.cli import entry

entry()
