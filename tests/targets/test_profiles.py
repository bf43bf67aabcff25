import json

from edge_fer.formats import export_formats
from edge_fer.targets import list_targets, load_target


def test_every_target_names_only_known_formats_and_runtimes():
    from edge_fer.runtimes import list_runtimes

    known = {f.name for f in export_formats()}
    for name in list_targets():
        target = load_target(name)
        assert set(target.formats) <= known and set(target.runtimes) <= set(list_runtimes()), name


def test_the_host_cpu_target_runs_every_format_that_needs_no_gpu():
    # a CPU format it did not run would be exported and evaluated but every bench row of it would fail
    from edge_fer.targets import runs_format

    host = load_target("host-cpu")
    assert {f.name for f in export_formats() if runs_format(host, f)} == {f.name for f in export_formats() if f.needs_gpu}


def test_a_new_target_starts_from_one_like_it_and_loads(tmp_path, capsys, monkeypatch):
    from edge_fer.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["targets", "new", "my-orin", "--like", "jetson-orin-nano"]) == 0
    assert "set ssh and check [device]" in capsys.readouterr().out
    target = load_target(str(tmp_path / "my-orin.toml"))
    like = load_target("jetson-orin-nano")
    assert target.ssh == "user@host" and target.formats == like.formats and target.device == like.device
    assert main(["targets", "new", "my-orin", "--like", "jetson-orin-nano"]) == 2  # never over an existing file
    assert "exists" in capsys.readouterr().err
    assert main(["targets", "new", "../x", "--like", "jetson-orin-nano"]) == 2
    capsys.readouterr()
    assert main(["targets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in listed] == list_targets() and {t["kind"] for t in listed} == {"cpu", "gpu", "jetson"}
