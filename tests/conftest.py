from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(capsys):
    """Run `efgen ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from efgen.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session", autouse=True)
def _result_cache_in_tmp(tmp_path_factory):
    """efgen's result cache (sweep points, cosim runs) goes to a session folder, never to
    the user's ~/.cache; a test that wants its own passes cache_dir / --cache."""
    import os

    old = os.environ.get("EFGEN_CACHE_DIR")
    os.environ["EFGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("efgen-cache"))
    yield
    if old is None:
        os.environ.pop("EFGEN_CACHE_DIR", None)
    else:
        os.environ["EFGEN_CACHE_DIR"] = old
