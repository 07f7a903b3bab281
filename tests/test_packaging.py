"""`pip install .` into a fresh venv ships configs/ (and the template folders) in the
wheel: `efgen net show resnet20` must work far away from the source checkout."""

import shutil
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("efgen", "configs", "templates", "hls_kernels")


def test_fresh_venv_install_runs_net_show(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in SHIPPED:
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "--quiet", str(src)], check=True,
                   timeout=600)
    shutil.rmtree(src)  # nothing may be read from the source tree any more
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([env_dir / "bin" / "efgen", "net", "show", "resnet20"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "40,551,040" in proc.stdout and "269,722" in proc.stdout
    proc = subprocess.run([env_dir / "bin" / "efgen", "boards"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "zcu102" in proc.stdout
    # The data folders are inside the installed package, not found via the checkout.
    where = subprocess.run([py, "-c", "import efgen.resources as r; print(r.configs_dir())"],
                           cwd=elsewhere, capture_output=True, text=True, check=True)
    assert str(env_dir) in where.stdout
    # The Vivado templates ship too (efgen build writes vivado/ from them).
    viv = subprocess.run([py, "-c", "import efgen.resources as r; d = r.data_dir('templates') / "
                          "'vivado'; print(d); print(*sorted(p.name for p in d.iterdir()))"],
                         cwd=elsewhere, capture_output=True, text=True, check=True)
    where_viv, names = viv.stdout.splitlines()
    assert str(env_dir) in where_viv
    assert names.split() == ["block_design.tcl.j2", "build.tcl.j2", "package_rtl_ip.tcl.j2"]


def test_every_subpackage_is_listed_in_pyproject():
    """A package missing from [tool.setuptools] packages installs without its modules."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "efgen").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found - listed == set()
