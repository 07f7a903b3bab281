"""Structure of the HLS convolution engine, read from its synthesis view.

hls_kernels/conv_engine.h is preprocessed as Vitis HLS sees it (-D__SYNTHESIS__, the
pragmas expanded to literals; tests/fixtures/vitis_stub stands in for
hls_streamofblocks.h) and parsed into blocks (a small brace parser: each ``{`` with the
statement head before it). The tests check the rules the issue sets for a kernel Vitis
can schedule as the model prices it, none of which g++ can check:

* the DATAFLOW region is canonical: channel declarations and process calls only; every
  channel has one producer (write locks) and one consumer (read locks); every array or
  DRAM pointer handed to the region goes to exactly one process;
* ping-pong halves are distinct arrays (no ``[2]`` dimension indexed at run time);
* every DRAM access sits in a pipelined loop, unconditional, its address linear in the
  loop counter (no divide, modulo or select), and each pipelined loop reads and writes
  at most one stream per pointer;
* every loop has a tripcount (or is fully unrolled);
* exactly one Tm x Tn multiply-accumulate datapath: ``mac_pass``, not inlined, shared
  by its call sites through ALLOCATION limit=1, and no other function holds a Tm x Tn
  unrolled product.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from efgen.csim.cc import hls_kernels_dir

VITIS_STUB = Path(__file__).parent / "fixtures" / "vitis_stub"
PARAMS = """#define EFGEN_TM 16
#define EFGEN_TN 24
#define EFGEN_LANES 8
#define EFGEN_IFM_DEPTH 4096
#define EFGEN_OFM_DEPTH 8192
#define EFGEN_WBUF_DEPTH 512
#define EFGEN_MAX_C 64
"""
DRAM = ("mem_in", "mem_w", "mem_out")


@dataclass
class Block:
    head: str                      # the statement before '{'
    start: int                     # offset of '{'
    end: int = -1                  # offset of the matching '}'
    parent: "Block | None" = None
    children: list = field(default_factory=list)

    def text(self, src: str) -> str:
        return src[self.start + 1:self.end]

    def own_pragmas(self, src: str) -> list[str]:
        """The pragmas at the top of the block (before its first nested block)."""
        body = self.text(src)
        first = self.children[0].start - self.start - 1 if self.children else len(body)
        return re.findall(r"#pragma HLS [^\n]*", body[:first])

    @property
    def is_for(self) -> bool:
        return re.match(r"\s*for\s*\(", self.head) is not None


def _parse(src: str) -> Block:
    """Blocks of ``src``; ';' inside parentheses (a for header) does not end a statement."""
    root = Block("", -1, len(src))
    cur, last, paren = root, 0, 0
    for m in re.finditer(r"[{};()]", src):
        ch, c = m.start(), m.group()
        if c in "()":
            paren += 1 if c == "(" else -1
            continue
        if paren:
            continue
        if c == "{":
            head = re.sub(r"#pragma HLS [^\n]*", "", src[last:ch]).strip()
            head = re.sub(r"^[A-Z][A-Z0-9_]*:(?!:)\s*", "", head)      # a loop label
            b = Block(head, ch, parent=cur)
            cur.children.append(b)
            cur = b
        elif c == "}":
            cur.end = ch
            cur = cur.parent
        last = ch + 1
    return root


def _walk(b: Block):
    yield b
    for c in b.children:
        yield from _walk(c)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    d = tmp_path_factory.mktemp("structure")
    (d / "efgen_params.h").write_text("#ifndef EFGEN_PARAMS_H\n#define EFGEN_PARAMS_H\n" + PARAMS +
                                      "#endif\n")
    proc = subprocess.run(["g++", "-std=c++14", "-E", "-P", "-D__SYNTHESIS__", f"-I{d}",
                           f"-I{hls_kernels_dir()}", f"-I{VITIS_STUB}",
                           str(hls_kernels_dir() / "conv_engine.h")],
                          capture_output=True, text=True, check=True)
    src = proc.stdout
    src = src[src.index("namespace efgen_ce"):]          # the engine (not the stub or libc)
    return src, _parse(src)


def _functions(src: str, root: Block) -> dict[str, Block]:
    out = {}
    for b in _walk(root):
        m = re.search(r"(\w+)\s*\([^()]*(\([^()]*\)[^()]*)*\)\s*$", b.head)
        if m and not b.is_for and m.group(1) not in ("if", "while", "switch", "for") \
                and b.parent is not None and not b.parent.is_for \
                and (b.parent.head.startswith("namespace") or b.parent.parent is None):
            out[m.group(1)] = b
    return out


def _calls(text: str, name: str) -> list[list[str]]:
    """Argument lists of the calls of ``name`` in ``text``."""
    out = []
    for m in re.finditer(rf"\b{name}\s*\(", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        args, depth, cur = [], 0, ""
        for ch in text[m.end():i - 1]:
            if ch == "," and depth == 0:
                args.append(cur.strip())
                cur = ""
                continue
            depth += {"(": 1, ")": -1, "<": 1, ">": -1}.get(ch, 0)
            cur += ch
        args.append(cur.strip())
        out.append(args)
    return out


def _params(head: str) -> list[str]:
    inner = head[head.index("(") + 1:head.rindex(")")]
    names, depth, cur = [], 0, ""
    for ch in inner + ",":
        if ch == "," and depth == 0:
            names.append(re.findall(r"(\w+)\s*(?:\[[^\]]*\])*\s*$", cur.strip())[0])
            cur = ""
            continue
        depth += {"(": 1, ")": -1, "<": 1, ">": -1}.get(ch, 0)
        cur += ch
    return names


def _region(src, root):
    fns = _functions(src, root)
    regions = [n for n, b in fns.items() if "#pragma HLS DATAFLOW" in b.text(src)]
    assert regions == ["run_chunk"], regions
    return fns, fns["run_chunk"]


def test_dataflow_region_is_canonical(kernel):
    src, root = kernel
    fns, reg = _region(src, root)
    body = reg.text(src)
    stmts = [s.strip() for s in re.sub(r"#pragma HLS [^\n]*", "", body).split(";") if s.strip()]
    channels, procs = [], []
    for s in stmts:
        if m := re.fullmatch(r"efgen_sob<\w+>\s+(\w+)", s):
            channels.append(m.group(1))
        elif m := re.fullmatch(r"(\w+)\s*\((.*)\)", s, re.S):
            procs.append(m.group(1))
        else:
            pytest.fail(f"run_chunk holds {s!r}: a DATAFLOW region holds channels and "
                        "process calls only")
    assert procs == ["ce_load", "ce_mac", "ce_store"]
    assert channels == ["ifm_s", "err_s", "ofm_s"]
    for p in procs:
        assert "#pragma HLS INLINE off" in fns[p].own_pragmas(src), p
    # every channel: one process writes it (write locks only), one reads it (read locks)
    for ch in channels:
        roles = []
        for p in procs:
            (args,) = _calls(body, p)
            if ch not in args:
                continue
            par = _params(fns[p].head)[args.index(ch)]
            text = fns[p].text(src)
            w = len(re.findall(rf"efgen_wlock<\w+>\s+\w+\({par}\)", text))
            r = len(re.findall(rf"efgen_rlock<\w+>\s+\w+\({par}\)", text))
            assert (w > 0) != (r > 0), (ch, p, w, r)
            roles.append("w" if w else "r")
        assert sorted(roles) == ["r", "w"], (ch, roles)
    # arrays reach exactly one process each; a DRAM pointer has at most one reading and
    # one writing process, the reader first (UG1448 HLS 200-992: "Variables (except
    # scalars) can only have one reading process and one writing process"; the canonical
    # rules: read before write for function arguments): mem_out is written by the storer
    # and read by the loader (a fused load's second stream on gmem2's read channel)
    region_params = dict(zip(_params(reg.head), re.split(r",(?![^<]*>)", reg.head[
        reg.head.index("(") + 1:reg.head.rindex(")")])))
    shared = [n for n, decl in region_params.items() if "[" in decl or "*" in decl]
    assert set(shared) == {"wbuf", "bbuf", "bacc", "kb", "kbd", "skb", "sacc", "kbs", *DRAM}
    for name in shared:
        users = [p for p in procs if name in _calls(body, p)[0]]
        if name not in DRAM:
            assert len(users) == 1, (name, users)
            continue
        readers, writers = [], []
        for p in users:
            par = _params(fns[p].head)[_calls(body, p)[0].index(name)]
            decl = fns[p].head[fns[p].head.index("(") + 1:]
            const = re.search(rf"const\s+float\s*\*\s*{par}\b", decl) is not None
            (readers if const else writers).append(p)
        assert len(readers) <= 1 and len(writers) <= 1, (name, readers, writers)
        if readers and writers:
            assert procs.index(readers[0]) < procs.index(writers[0]), (name, readers, writers)
    load_args = _calls(body, "ce_load")[0]
    assert "mem_out" in load_args and "mem_w" not in load_args


def test_ping_pong_halves_are_distinct_arrays(kernel):
    src, _ = kernel
    assert not re.search(r"\w+\s*\[\s*2\s*\]\s*\[", src), "an array with a [2] half dimension"
    assert "efgen_sob<IfmBlock> ifm_s" in src and "efgen_sob<OfmBlock> ofm_s" in src


def _enclosing(root: Block, pos: int) -> list[Block]:
    chain, b = [], root
    while True:
        nxt = [c for c in b.children if c.start < pos < c.end]
        if not nxt:
            return chain
        b = nxt[0]
        chain.append(b)


def _pipelined(src, b: Block) -> bool:
    return any("PIPELINE" in p for p in b.own_pragmas(src))


def _unrolled(src, b: Block) -> bool:
    return any(p.endswith("UNROLL") for p in b.own_pragmas(src))


def test_dram_accesses_are_unconditional_linear_bursts(kernel):
    src, root = kernel
    seen = 0
    streams: dict = {}
    for m in re.finditer(r"\b(mem_in|mem_w|mem_out)\s*\[", src):
        # the index expression
        depth, i = 1, m.end()
        while depth:
            depth += {"[": 1, "]": -1}.get(src[i], 0)
            i += 1
        index = src[m.end():i - 1]
        chain = _enclosing(root, m.start())
        loops = [b for b in chain if b.is_for]
        assert loops, f"DRAM access outside any loop: {index}"
        inner = [b for b in loops if not _unrolled(src, b)]
        assert inner and _pipelined(src, inner[-1]), f"DRAM access not in a pipelined loop: {index}"
        loop = inner[-1]
        # nothing but unrolled lane loops between the pipelined loop and the access
        below = chain[chain.index(loop) + 1:]
        assert all(b.is_for and _unrolled(src, b) for b in below), \
            f"{index}: conditional access ({[b.head for b in below]})"
        stmt_start = max(src.rfind(c, 0, m.start()) for c in ";{}") + 1   # no for header here
        stmt = src[stmt_start:src.find(";", m.start())]
        assert not re.match(r"\s*(if|else)\b", stmt), f"conditional access: {stmt.strip()}"
        assert not re.search(r"[?/%]", index), f"non-linear address: {index}"
        var = re.match(r"\s*for\s*\(\s*int\s+(\w+)", loop.head).group(1)
        assert len(re.findall(rf"\b{var}\b", index)) == 1, f"{index}: not linear in {var}"
        lane = [re.match(r"\s*for\s*\(\s*int\s+(\w+)", b.head).group(1) for b in below]
        base = index
        for v in lane:
            base = re.sub(rf"\s*\+\s*{v}\b", "", base)
        write = re.match(r"\s*\]\s*=(?!=)", src[i - 1:i + 4]) is not None
        streams.setdefault((loop.start, m.group(1), write), set()).add(re.sub(r"\s+", "", base))
        seen += 1
    assert seen >= 15
    many = {k: v for k, v in streams.items() if len(v) > 1}
    assert not many, f"a pipelined loop with two streams on one pointer and direction: {many}"


def test_every_loop_has_a_tripcount(kernel):
    src, root = kernel
    loops = [b for b in _walk(root) if b.is_for]
    assert len(loops) > 30
    bare = [b.head for b in loops
            if not any("LOOP_TRIPCOUNT" in p or p.endswith("UNROLL") for p in b.own_pragmas(src))]
    assert not bare, bare


def test_one_shared_mac_datapath(kernel):
    src, root = kernel
    fns = _functions(src, root)
    mac = fns["mac_pass"]
    assert "#pragma HLS INLINE off" in mac.own_pragmas(src)
    sites = [n for n, b in fns.items() if re.search(r"\bmac_pass\s*\(", b.text(src))]
    assert sites == ["ce_mac"]
    assert len(_calls(fns["ce_mac"].text(src), "mac_pass")) == 2
    assert "#pragma HLS ALLOCATION function instances=mac_pass limit=1" in \
        fns["ce_mac"].own_pragmas(src)
    # the Tm x Tn products: unrolled m and n loops with a multiply, in mac_pass only
    holders = []
    for name, b in fns.items():
        for blk in _walk(b):
            if blk.is_for and re.search(r"<\s*TM\b", blk.head) and _unrolled(src, blk):
                inner = [c for c in _walk(blk) if c.is_for and re.search(r"<\s*TN\b", c.head)
                         and _unrolled(src, c) and re.search(r"\w\s*\*\s*\w", c.text(src))]
                if inner:
                    holders.append(name)
    assert sorted(set(holders)) == ["mac_pass"], holders
    # and its adders (issue 13: per pixel lane pp): conv, Tn per output lane (the tree's
    # Tn-1 nodes and the accumulator); WU, P per (m, n) (the tree over P, the accumulator)
    body = mac.text(src)
    assert len(re.findall(r"tv\[n\]\s*=\s*tv\[n\]\s*\+\s*tv\[n \+ w\]", body)) == 1
    assert len(re.findall(r"res0\s*=\s*tv\[0\]\s*\+", body)) == 1
    assert len(re.findall(r"pv\[pp\]\s*=\s*pv\[pp\]\s*\+\s*pv\[pp \+ w\]", body)) == 1
    assert len(re.findall(r"wbuf\[m\]\[n\]\[wa\]\s*=\s*pv\[0\]\s*\+", body)) == 1


def test_tripcounts_from_the_schedule():
    """efgen/hls/conv_job.py's loop bounds on a hand-counted descriptor: FP, batch 2,
    6 -> 10 channels, 8x8, K 3, stride 1, pad 1, tiles 4x8, one output block per chunk,
    on a 4x4 array (T = 4)."""
    from efgen.hls.conv_job import tripcounts
    from efgen.hls.desc import make_desc
    d = make_desc("CONV_FP", [], {0: 0, 1: 0, 7: 0}, batch=2, in_c=6, in_h=8, in_w=8,
                  out_c=10, out_h=8, out_w=8, kh=3, kw=3, stride=1, pad=1, tr=4, tc=8, mc=1,
                  order=0)
    t = tripcounts([d], 4, 4, 4, 256, 6)
    assert t["EFGEN_MAX_CHUNKS"] == 3            # ceil(10 / 4) output blocks, one per chunk
    assert t["EFGEN_MAX_NB"] == 2                # ceil(6 / 4) reduction blocks
    assert t["EFGEN_MAX_GROUPS"] == 2 * 2 * 1    # images x row tiles x column tiles
    assert t["EFGEN_MAX_STEPS"] == 8
    assert t["EFGEN_MAX_PASS"] == 9 * 32         # K*K x max(tr*tc, ACC_DIST)
    assert t["EFGEN_MAX_RUN"] == 6 * 8           # a 6 x 10 halo, 8 real columns = whole rows
    assert t["EFGEN_MAX_RUNS"] == 1
    assert t["EFGEN_MAX_WROWS"] == 9 * 4         # weight load: K*K x Tm rows of Tn words
    wu = make_desc("CONV_WU", [], {0: 0, 1: 0, 2: 0, 3: 0, 6: 0}, batch=2, in_c=6, in_h=8,
                   in_w=8, out_c=10, out_h=8, out_w=8, kh=1, kw=1, stride=1, pad=0, tr=2,
                   tc=2, mc=3, order=1)
    t = tripcounts([wu], 4, 4, 4, 16, 6)
    # K = 1: G = 6 partial sums; a chunk of 3 blocks x 2 x 6 = 36 > 16 words: 1 block
    assert t["EFGEN_MAX_MC"] == 1 and t["EFGEN_MAX_CHUNKS"] == 3
    assert t["EFGEN_MAX_PASS"] == 1 * 1 * 6      # max(p = 4, G = 6) runs of K*K
    assert t["EFGEN_MAX_FOLD"] == 5 * 1 * 4 * 1  # (G-1) x K*K*Tm*Tn/T rows
    assert t["EFGEN_MAX_RUNS"] == 2 and t["EFGEN_MAX_RUN"] == 2   # 2 x 2 windows of 8 x 8: a run per row


def test_conv_operators_match_the_inventory(kernel):
    """efgen/model/operators.py's conv-engine inventory (what the resource model prices and
    manifest.json lists) against the C++: the auxiliaries' ALLOCATION limits, and the
    datapath's one multiply and Tn adders per (m, n) lane pair."""
    from efgen.model.operators import conv_engine_ops
    src, root = kernel
    fns = _functions(src, root)
    inv = conv_engine_ops(16, 24, 4)         # the fixture's Tm, Tn; EFGEN_AXI_WORDS default
    for name in ("ce_load", "ce_store", "sgd_writeback"):
        limits = {m.group(1): int(m.group(2)) for p in fns[name].own_pragmas(src)
                  if (m := re.search(r"ALLOCATION operation instances=(\w+) limit=(\d+)", p))}
        assert limits == inv[name], (name, limits, inv[name])
    mac = fns["mac_pass"].text(src)
    # one product per (m, n, pp): `prodp[pp][n] = a * b` inside the unrolled TM x P x TN
    # loops (issue 13's pixel lanes)
    assert len(re.findall(r"prodp\[pp\]\[n\]\s*=\s*a\s*\*\s*b", mac)) == 1
    # Tn adders per (m, pp) in conv: the Tn-1 tree nodes and the accumulator; in WU the
    # same P adders per (m, n): the tree over P and the accumulator
    assert len(re.findall(r"tv\[n\]\s*=\s*tv\[n\]\s*\+", mac)) == 1
    assert len(re.findall(r"res0\s*=", mac)) == 1
    assert len(re.findall(r"pv\[pp\]\s*=\s*pv\[pp\]\s*\+", mac)) == 1
    assert inv["mac_pass"] == {"fmul": 16 * 24, "fadd": 16 * 24}
    assert conv_engine_ops(16, 24, 4, 3)["mac_pass"] == {"fmul": 16 * 24 * 3, "fadd": 16 * 24 * 3}


@pytest.mark.parametrize("board,net,fuse", [("zcu102", "resnet20", False),
                                            ("pynq-z2", "lenet5", False),
                                            ("kv260", "tiny", False), ("zcu102", "tiny", True)])
def test_manifest_matches_the_model(board, net, fuse, tmp_path, run_cli):
    """manifest.json (written from the same Design as the code) against the model's
    resource figures: the array's and the auxiliaries' DSP exactly; the weight buffer's
    BRAM exactly; the ping-pong channels, sized from the schedule's tiles, within the
    model's IFM and OFM buffers; a fused design's BP-store tiles (SE, SK) within the
    model's."""
    import json
    out = tmp_path / "b"
    code, _, err = run_cli("build", "--board", board, "--net", net, "--batch", "4", "-o", str(out),
                           *(["--fuse"] if fuse else []))
    assert code == 0, err
    man = json.loads((out / "hls" / "manifest.json").read_text())
    k, m = man["kernel"], man["model"]
    assert k["dsp_array"] == m["dsp_array"]
    # (a fused design: the manifest does not list the restructured-BN units' operators
    # yet, which the model prices (efgen.model.operators.fused_unit_ops): DSP not compared)
    assert fuse or k["dsp_aux"] == m["dsp_aux"]
    rep = json.loads((out / "report.json").read_text())
    assert m["dsp"] == rep["totals"]["resources"]["dsp"]
    mem = {x["name"]: x for x in man["engines"]["conv"]["memories"]}
    assert mem["wbuf"]["bram18"] == m["bram18_wbuf"]
    assert mem["ifm_s"]["bram18"] <= m["bram18_ifm"]
    assert mem["ofm_s"]["bram18"] + mem["err_s"]["bram18"] <= m["bram18_ofm"]
    if fuse:
        tiles = mem["seb"]["bram18"] + mem["syb"]["bram18"]
        assert 0 < tiles <= m["bram18_fuse"] == rep["totals"]["resources"]["bram_fuse"]
    else:
        assert "seb" not in mem and "bram18_fuse" not in m
        assert "bram_fuse" not in rep["totals"]["resources"]
