"""Two worker processes on a real database: a throwaway PostgreSQL server (initdb in a temporary folder, a
free port on 127.0.0.1), started for this test and stopped after it. ``.ci/run`` installs PostgreSQL when
it is missing; the test is skipped only where no server can be had (the reason is given)."""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from layerforge.search.study import _driver
from tests.search.conftest import iris_search

pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of our own. initdb refuses to run as root, so as root it runs as the 'postgres'
    system user (created by the PostgreSQL package) in a folder that user owns."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install -e '.[search]'")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server here (initdb/pg_ctl not found; .ci/run installs it with apt-get "
                    "install postgresql where it can)")
    run_as: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="lf-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no 'postgres' user for initdb to run as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run([*run_as, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"], check=True,
                       capture_output=True, env=env, timeout=120)
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, env=env, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        # a server that cannot start here (no runuser, a container's shared-memory limit, ...) is no server:
        # skipped with what it said, as where none is installed
        log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        said = getattr(e, "stderr", None) or b""
        said = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        pytest.skip(f"could not start a PostgreSQL server here: {e}; {said.strip()[-500:]} {log.strip()[-500:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_study_in_postgresql(tmp_path, postgres_url):
    import optuna

    spec = iris_search(tmp_path, """
        search:
          objective: val_accuracy
          trials: 4
          space:
            model.layers.h1.units: {space: int, lower: 4, upper: 16}
            train.optimizer.lr: {space: loguniform, lower: 3e-3, upper: 3e-2}
        """, epochs=1)
    done = subprocess.run([sys.executable, "-m", "layerforge", "search", str(spec), "--workers", "2", "--storage",
                           postgres_url, "--study", "pg", "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["storage"] == postgres_url and result["counts"]["complete"] == 4
    trials = optuna.load_study(study_name="pg", storage=_driver(postgres_url)).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert (tmp_path / "runs/iris_search/search-pg/best.yaml").is_file()
