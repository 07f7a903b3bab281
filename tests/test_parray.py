"""Issue 13 (a third unrolled dimension P and first-layer tap packing) in the model, the
scheduler and the golden tiled reference. The HLS C++ with P > 1 and packing runs in
tests/test_csim.py; the RTL flow's refusal of P > 1 is tested here."""

import json
import subprocess
import sys
import tarfile
import io
from pathlib import Path

import numpy as np
import pytest

from efgen.errors import EfgenError
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.model import engine
from efgen.model.evaluate import evaluate_design
from efgen.model.schedule import Request, schedule

REPO = Path(__file__).resolve().parents[1]
# The last commit before issue 13 changed the model: P = 1 without packing must schedule
# the same designs and price every layer-phase at the same cycles as it did.
BEFORE_P = "a3dc772"
SAME_CASES = [("resnet20", "zcu102", 32, True), ("vgg16-cifar", "zcu104", 8, False),
              ("lenet5", "kv260", 4, False), ("resnet20-b", "ultra96v2", 4, True)]

_PROBE = r"""
import json, sys
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.model.evaluate import evaluate_design
from efgen.model.schedule import Request, schedule
out = []
for net, board, batch, fuse in json.loads(sys.argv[1]):
    n, b = load_net(net), load_board(board)
    kw = json.loads(sys.argv[2])
    d = schedule(Request(n, b, batch=batch, clock_mhz=100.0, fuse=fuse, **kw))
    ev = evaluate_design(n, d, b)
    dd = d.to_dict()
    dd.pop("efgen_version")
    out.append({"design": dd, "rows": [[r.layer, r.phase, r.engine, r.cycles] for r in ev["rows"]]})
print(json.dumps(out))
"""


def _probe(root: Path, kw: dict) -> list:
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(SAME_CASES), json.dumps(kw)],
                       cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_p1_reproduces_the_designs_and_cycles_before_issue_13(tmp_path):
    """Schedule several nets/boards with the model as it was before P existed (extracted
    from git) and with P = 1, no packing, now: the same Designs and per-row cycles."""
    try:
        tar = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_P, "efgen", "configs"],
                             capture_output=True, timeout=120, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot extract commit {BEFORE_P} with git: {exc}")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(tmp_path)
    before = _probe(tmp_path, {})
    now = _probe(REPO, {"p": 1, "pack": False})
    assert len(before) == len(now) == len(SAME_CASES)
    for case, a, b in zip(SAME_CASES, before, now):
        assert a["design"] == b["design"], case
        assert a["rows"] == b["rows"], case
