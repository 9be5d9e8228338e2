"""``atlas serve`` previews a built site on 127.0.0.1 (and refuses a folder without a site)."""
import socket
import subprocess
import sys
import time
import urllib.request

from atlas.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_serves_the_site_locally(tmp_path):
    (tmp_path / "index.html").write_text("<h1>atlas test</h1>")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "atlas.cli", "serve", "--site", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not answer")
        assert b"atlas test" in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_without_a_site(tmp_path, capsys):
    assert main(["serve", "--site", str(tmp_path / "none")]) == 2
    assert "build it first" in capsys.readouterr().err
