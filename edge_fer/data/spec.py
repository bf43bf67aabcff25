"""A dataset named the one way every stage, command and record uses: adapter name, root folder, label mode and
adapter options. Written as a plain dict into model.json and artifact metadata; read back with DatasetSpec.of."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edge_fer.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    root: str | None = None
    label_mode: str | None = None
    options: dict = field(default_factory=dict)

    @classmethod
    def of(cls, value: DatasetSpec | dict | None) -> DatasetSpec | None:
        """From a record's dict ({"name", "root", "label_mode", "options"}; a [data] table's "dataset" key too)."""
        if value is None or isinstance(value, DatasetSpec):
            return value
        if not isinstance(value, dict) or not isinstance(value.get("name") or value.get("dataset"), str):
            raise UserError(f"a dataset record must name its dataset, got {value!r}")
        return cls(name=value.get("name") or value["dataset"], root=value.get("root"),
                   label_mode=value.get("label_mode"), options=dict(value.get("options") or {}))

    def with_label_mode(self, label_mode: str | None) -> DatasetSpec:
        return DatasetSpec(self.name, self.root, label_mode or self.label_mode, self.options)

    def as_dict(self) -> dict:
        return asdict(self)

    def load(self, image_size: int | None = None):
        from edge_fer.data import load_dataset

        return load_dataset(self.name, self.root, label_mode=self.label_mode, image_size=image_size, **self.options)
