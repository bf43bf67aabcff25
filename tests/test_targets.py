from edge_fer.formats import export_formats
from edge_fer.targets import list_targets, load_target


def test_every_target_names_only_known_formats():
    known = {f.name for f in export_formats()}
    for name in list_targets():
        assert set(load_target(name).formats) <= known, name


def test_the_host_cpu_target_runs_every_format_that_needs_no_gpu():
    # a CPU format missing here is exported and evaluated but every bench row of it fails
    assert set(load_target("host-cpu").formats) == {f.name for f in export_formats() if not f.needs_gpu}
