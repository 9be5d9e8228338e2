"""The one error path: every failure is one ``atlas: error:`` line naming the bad value or file and the fix,
with its exit status (``atlas.errors.EXIT_CODES``); a traceback only with ``--debug`` or ``ATLAS_DEBUG=1``.
Devices, ports, folders, data, resources and method settings are checked before any work."""
from __future__ import annotations

import errno
import resource
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from atlas.cli import main
from atlas.errors import EXIT_CODES, failure_line

TINY = ('preset = "demo"\nstore = "{tmp}/store"\nsite = "{tmp}/site"\nclasses = [285]\nmethods = ["maco"]\n'
        '[targets]\nconcepts = 0\nrandom_neurons = 0\nlayers = []\nimages = 0\nkind_methods = {{}}\n'
        '[data]\nreferences = 2\nspectrum_images = 4\n'
        '[settings.maco]\nsteps = 1\ncrops = 1\nimage_size = 64\n')


def tiny_config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(tmp=tmp_path) + extra)
    return str(path)


def one_line(capsys, code, expected_code=2):
    out, err = capsys.readouterr()
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert code == expected_code, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("atlas: error: "), lines
    assert "Traceback" not in out + err
    return lines[0]


# ------------------------------------------------------------------------------------------ devices
@pytest.mark.parametrize("device, needle", [
    ("gpu", 'got \'gpu\''), ("xla", "got 'xla'"), ("", "got ''"), ("cuda:x", "got 'cuda:x'"),
    ("cuda", "cuda requested but no CUDA device is available; use --device cpu"),
    ("cuda:1", "cuda:1 requested but no CUDA device is available; use --device cpu"),
    ("mps", "mps requested but no Apple GPU (MPS) is available; use --device cpu"),
])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_device_this_machine_lacks_is_one_line_before_anything_loads_mock_no_gpu(
        tmp_path, capsys, monkeypatch, device, needle, command):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    code = main(["-q", command, "--config", tiny_config(tmp_path), "--device", device])
    assert needle in one_line(capsys, code)
    assert not (tmp_path / "store").exists()  # refused before the plan wrote anything


def test_a_missing_cuda_index_names_the_devices_there_are_mock_gpu(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code = main(["-q", "plan", "--config", tiny_config(tmp_path), "--device", "cuda:1"])
    assert "cuda:1 requested but this machine has 1 CUDA device(s) (cuda:0); use --device cuda:0" in one_line(
        capsys, code)


# ------------------------------------------------------------------------------------------ folders
@pytest.mark.parametrize("option, value, needle", [
    ("--store", "afile", "option --store: 'afile' is a file; a folder is needed here: choose another with --store"),
    ("--store", "afile/sub", "'afile/sub' is below 'afile', which is a file"),
    ("--site", "afile/sub/deeper", "option --site: 'afile/sub/deeper' is below 'afile', which is a file"),
    ("--store", "", "option --store must be a folder path"),
])
def test_a_store_or_site_naming_a_file_is_one_line(tmp_path, capsys, monkeypatch, option, value, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    code = main(["-q", "plan", "--config", tiny_config(tmp_path), option, value])
    assert needle in one_line(capsys, code)
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_config_file_naming_a_file_as_store_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    text = TINY.format(tmp=tmp_path).replace(f'store = "{tmp_path}/store"', f'store = "{tmp_path}/afile/x"')
    (tmp_path / "c.toml").write_text(text)
    line = one_line(capsys, main(["-q", "plan", "--config", str(tmp_path / "c.toml")]))
    assert "config key 'store':" in line and "which is a file" in line and "--store" in line


def test_tilde_in_store_and_site_is_the_home_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main(["-q", "render", "--config", tiny_config(tmp_path), "--store", "~/atlas-store", "--site", "~/web"]) == 0
    assert (tmp_path / "home" / "web" / "index.html").is_file()
    assert not (tmp_path / "~").exists()
    text = TINY.format(tmp=tmp_path).replace(f'"{tmp_path}/store"', '"~/s2"').replace(f'"{tmp_path}/site"', '"~/w2"')
    (tmp_path / "c.toml").write_text(text)
    capsys.readouterr()
    assert main(["-q", "render", "--config", str(tmp_path / "c.toml")]) == 0
    assert (tmp_path / "home" / "w2" / "index.html").is_file() and not (tmp_path / "~").exists()
    assert main(["-q", "plan", "--config", str(tmp_path / "c.toml")]) == 0
    assert f"store {tmp_path / 'home' / 's2'}" in capsys.readouterr().out


def test_a_config_that_is_not_a_regular_file_says_so(capsys):
    line = one_line(capsys, main(["-q", "plan", "--config", "/dev/null"]))
    assert "config file '/dev/null' is not a regular file" in line and "does not exist" not in line


# ------------------------------------------------------------------------------------------ data
def test_data_naming_a_file_says_so(tmp_path, capsys):
    (tmp_path / "images.zip").write_bytes(b"PK")
    code = main(["-q", "run", "--config", tiny_config(tmp_path), "--data", str(tmp_path / "images.zip")])
    line = one_line(capsys, code)
    assert "is a file, not a folder" in line and "images.zip" in line and "does not exist" not in line


def test_a_data_folder_of_unreadable_files_is_one_line(tmp_path, capsys):
    folder = tmp_path / "data" / "n02123045"  # tabby cat, class 281
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"x{i}.JPEG").write_bytes(b"not a jpeg")
    code = main(["-q", "run", "--config", tiny_config(tmp_path), "--data", str(tmp_path / "data")])
    line = one_line(capsys, code)
    assert "no readable image in image folder" in line and "x" in line and "--data" in line
    assert not (tmp_path / "store" / "jobs").exists() or not any((tmp_path / "store" / "jobs").iterdir())


# ------------------------------------------------------------------------------------------ settings, resources
@pytest.mark.parametrize("setting, needle", [
    ("crops = 0", "setting 'crops' of method maco must be a positive integer, got 0"),
    ("image_size = 1", "setting 'image_size' of method maco must be an integer >= 16, got 1"),
    ("steps = 1000000000000", "setting 'steps' of method maco must be an integer >= 1 and <= 1000000"),
])
def test_settings_the_method_cannot_run_stop_the_plan(tmp_path, capsys, setting, needle):
    text = TINY.format(tmp=tmp_path).replace("image_size = 64\n", "").replace("crops = 1\n", "")
    text = text.replace("steps = 1\n", "") + setting + "\n"
    (tmp_path / "c.toml").write_text(text)
    code = main(["-q", "plan", "--config", str(tmp_path / "c.toml")])
    assert needle in one_line(capsys, code)
    assert not (tmp_path / "store").exists()


def test_a_huge_count_of_image_targets_is_one_line_not_a_plan_that_fills_memory(tmp_path, capsys):
    """Found by bench/fuzz.py: ``[targets] images = 10**12`` listed 10**12 image ids (the fuzzer was killed
    by the kernel's OOM killer at 13 GB)."""
    text = TINY.format(tmp=tmp_path).replace("images = 0", "images = 1000000000000")
    (tmp_path / "c.toml").write_text(text)
    line = one_line(capsys, main(["-q", "plan", "--config", str(tmp_path / "c.toml")]))
    assert "config key 'targets.images' must be" in line and "1000000000000" in line


def test_a_patch_larger_than_the_model_input_stops_the_plan(tmp_path, capsys):
    text = TINY.format(tmp=tmp_path).replace('methods = ["maco"]', 'methods = ["vital"]') + "[settings.vital]\npatch = 500\n"
    (tmp_path / "c.toml").write_text(text)
    code = main(["-q", "plan", "--config", str(tmp_path / "c.toml")])
    assert "setting 'patch' of method vital must be at most the input side of efficientnet_lite0 (224 px), got 500" \
        in one_line(capsys, code)


def test_an_image_too_large_for_memory_is_refused_with_the_estimate_and_the_limit(tmp_path, capsys):
    text = TINY.format(tmp=tmp_path).replace("image_size = 64", "image_size = 100000")
    (tmp_path / "c.toml").write_text(text)
    code = main(["-q", "run", "--config", str(tmp_path / "c.toml")])
    line = one_line(capsys, code)
    assert "maco on efficientnet_lite0: 1 target(s) x 1 image(s) per step at image_size 100000 needs ~" in line
    assert "GiB, more than the" in line and "lower image_size, crops/views or batch_size" in line
    assert not (tmp_path / "store" / "jobs").exists()
    assert main(["-q", "plan", "--config", str(tmp_path / "c.toml")]) == 0  # plan shows it, on any machine
    assert "memory: does not fit: maco on efficientnet_lite0" in capsys.readouterr().out


def test_the_memory_limit_of_ulimit_is_honoured_mock_ulimit(tmp_path, capsys, monkeypatch):
    """A process limited by ``ulimit -v`` (simulated: the test process itself must keep its memory)."""
    real = resource.getrlimit
    monkeypatch.setattr(resource, "getrlimit", lambda which: (2**30, 2**30) if which == resource.RLIMIT_AS
                        else real(which))
    code = main(["-q", "run", "--config", tiny_config(tmp_path)])
    assert "what ulimit -v leaves this process" in one_line(capsys, code)


def test_the_memory_estimate_is_close_to_the_measured_peak():
    """bench/memory.py measured the peak RSS of Lite0 MACO at the demo's settings (bench/README.md, "Memory"):
    1261 / 1622 / 2409 MiB at batch 1 / 2 / 4. The estimate stays within 15 % of each."""
    from atlas.config import config_from_mapping
    from atlas.pipeline import make_plan
    from atlas.pipeline.memory import RUNTIME_BYTES, largest_need

    for batch, measured in ((1, 1261), (2, 1622), (4, 2409)):
        cfg = config_from_mapping({"preset": "demo", "methods": ["maco"], "classes": [285, 967, 665, 872],
                                   "batch_size": batch,
                                   "targets": {"concepts": 0, "random_neurons": 0, "images": 0, "layers": []}})
        need = largest_need(make_plan(cfg).jobs, batch, base=RUNTIME_BYTES["cpu"])
        assert need.targets == batch and not need.partial
        assert abs(need.bytes / 2**20 - measured) / measured < 0.15, (batch, need.bytes / 2**20, measured)


def test_shard_counts_beyond_the_batches_cost_nothing(tmp_path, capsys):
    from atlas.config import config_from_mapping
    from atlas.pipeline import make_plan
    from atlas.pipeline.sharding import shard_batches

    cfg = config_from_mapping({"preset": "demo", "methods": ["maco"], "classes": [285],
                               "targets": {"concepts": 0, "random_neurons": 0, "images": 0, "layers": []}})
    jobs = make_plan(cfg).jobs
    start = time.perf_counter()
    assert shard_batches(jobs, 1, 0, 10**20) == shard_batches(jobs, 1, 0, 1)
    assert shard_batches(jobs, 1, 5, 10**20) == []
    assert time.perf_counter() - start < 5
    assert "bad shard ''" in one_line(capsys, main(["-q", "run", "--config", tiny_config(tmp_path), "--shard", ""]))


# ------------------------------------------------------------------------------------------ ports
@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_one_line(tmp_path, capsys, port):
    (tmp_path / "index.html").write_text("<p>site</p>")
    line = one_line(capsys, main(["serve", "--site", str(tmp_path), "--port", port]))
    assert f"--port must be a port number from 1 to 65535 (or 0 for any free port), got {port}" in line


def test_a_busy_port_names_the_alternative(tmp_path, capsys):
    (tmp_path / "index.html").write_text("<p>site</p>")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line(capsys, main(["serve", "--site", str(tmp_path), "--port", str(port)]))
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port 0 for any free port" in line


def test_port_0_picks_a_free_port_and_says_which(tmp_path):
    (tmp_path / "index.html").write_text("<h1>picked</h1>")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from atlas.cli import main; sys.exit(main())",
                             "serve", "--site", str(tmp_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("serving ") and "http://127.0.0.1:" in first, first + proc.stderr.read()
        port = int(first.split("http://127.0.0.1:")[1].split("/")[0])
        assert port > 0
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read()
        assert b"picked" in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------ the one line
def test_a_bug_is_one_line_that_names_debug_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import atlas.pipeline

    def boom(cfg):
        raise ValueError("boom")

    monkeypatch.setattr(atlas.pipeline, "make_plan", boom)
    monkeypatch.delenv("ATLAS_DEBUG", raising=False)
    line = one_line(capsys, main(["plan", "--config", tiny_config(tmp_path)]), expected_code=1)
    assert line == ("atlas: error: internal error (ValueError: boom); run again with --debug (or ATLAS_DEBUG=1) to "
                    "see the traceback, and please report it")
    for argv, env in ((["--debug", "plan"], None), (["plan", "--debug"], None), (["plan"], "1")):
        if env:
            monkeypatch.setenv("ATLAS_DEBUG", env)
        assert main([*argv, "--config", tiny_config(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "ValueError: boom" in err
        assert err.strip().splitlines()[-1].startswith("atlas: error: internal error (ValueError: boom)")


@pytest.mark.parametrize("exc, needle, code", [
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory (CUDA out of memory.", 1),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
     "lower batch_size, image_size or crops", 1),
    (MemoryError(), "out of memory", 1),
    (OSError(errno.ENOSPC, "No space left on device", "/data/x.npy"),
     "cannot use '/data/x.npy': No space left on device; free some disk space", 1),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/b"), "a part of the path is a file", 1),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "check its permissions", 1),
])
def test_failures_outside_atlas_are_one_line_with_the_fix(exc, needle, code):
    line, status = failure_line(exc)
    assert needle in line and status == code and "\n" not in line and status in EXIT_CODES


@pytest.mark.parametrize("argv, needle", [
    (["plan", "--bogus"], "No such option '--bogus'; see 'atlas plan --help'"),
    (["plan", "--store"], "Option '--store' requires an argument; see 'atlas plan --help'"),
    (["serve", "--port", "x"], "Invalid value for '--port': 'x' is not a valid integer; see 'atlas serve --help'"),
    (["plna"], "No such command 'plna'"),
    (["submit", "--executor", "pbs"], "Invalid value for '--executor'"),
])
def test_usage_errors_are_one_line(capsys, argv, needle):
    assert needle in one_line(capsys, main(argv))


# ------------------------------------------------------------------------------------------ what is said
def test_quiet_prints_no_progress_bar_at_all(tmp_path, capsys):
    """-q silences every bar, also the spectrum's (opened by the method, not the runner)."""
    assert main(["-q", "run", "--config", tiny_config(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "spectrum" not in err and "|" not in err and "it/s" not in err, err
    assert "1 jobs run" in out


def test_an_empty_config_says_it_plans_every_class(tmp_path, capsys, caplog):
    (tmp_path / "empty.toml").write_text("")
    assert main(["-q", "plan", "--config", str(tmp_path / "empty.toml"), "--store", str(tmp_path / "s")]) == 0
    assert "sets no classes and no preset: every class of the model is planned" in caplog.text
    assert "1000 classes" in capsys.readouterr().out


def test_the_run_bar_counts_steps_within_a_job():
    from atlas.pipeline.runner import _step_counter

    class Bar:
        postfix = ""

        def set_postfix_str(self, s):
            self.postfix = s

    class Cfg:
        steps = 1000

    bar = Bar()
    on_step = _step_counter(bar, Cfg(), every=0.0)
    for step in range(250):
        on_step(step)
    assert bar.postfix == "step 250/1000"
