"""Trained parameters on disk: one ``.npz`` archive keyed ``"<layer>.<param>"``.

Keys are the layer name, a dot, and one of the parameter names the IR defines
(``Layer.param_shapes`` and ``Layer.buffer_shapes``): ``weight``, ``bias`` (conv, linear),
``gamma``, ``beta``, ``running_mean``, ``running_var`` (batchnorm). Layer names may
contain any character, dots included: the parameter name is what follows the *last* dot.

:func:`read_weights` reads such an archive and :func:`check_flat` checks it against the
net: every missing parameter, unexpected key and wrong shape is reported in one
:class:`EfgenError` that names the file, the key and the expected shape.
:func:`efgen.golden.checkpoint.load_weights` turns a checked archive into a golden
``TrainState``; this module knows nothing of the golden model (a state is read through
its ``params`` and ``buffers`` only).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from efgen.errors import EfgenError
from efgen.frontend.ir import Net, did_you_mean

Shape = tuple[int, ...]
_MAX_LISTED = 6   # problems named in one error message


def expected_shapes(net: Net) -> dict[str, Shape]:
    """``{"<layer>.<param>": shape}`` for every parameter and buffer of ``net``."""
    out: dict[str, Shape] = {}
    for l in net:
        for n, s in {**l.param_shapes(), **l.buffer_shapes()}.items():
            out[f"{l.name}.{n}"] = tuple(s)
    return out


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(int(v)) for v in shape) + ("," if len(shape) == 1 else "") + ")"


_FIX = ("use weights saved for this net: keys are '<layer>.<param>' with the shapes "
        "'efgen net show' implies (conv weight [out, in, k, k], linear weight [out, in], "
        "batchnorm gamma/beta/running_mean/running_var [channels])")


def check_flat(net: Net, flat: dict[str, np.ndarray], *, file: str | None = None,
               what: str = "weights", fix: str = _FIX) -> None:
    """Raise one EfgenError listing every mismatch between ``flat`` and ``net``.

    Mismatches: a parameter of the net that ``flat`` lacks, a key of ``flat`` the net
    does not have, an array whose shape differs from the one the net needs.
    """
    want = expected_shapes(net)
    missing = [f"missing parameter '{k}' (expected shape {_fmt(s)})"
               for k, s in want.items() if k not in flat]
    wrong = [f"'{k}' has shape {_fmt(np.shape(flat[k]))}, expected {_fmt(s)}"
             for k, s in want.items() if k in flat and tuple(np.shape(flat[k])) != s]
    extra = []
    for key in flat:
        if key not in want:
            hint = did_you_mean(key, want).strip()
            extra.append(f"unexpected key '{key}'" + (f" ({hint})" if hint else ""))
    problems = missing + wrong + extra
    if not problems:
        return
    listed = "; ".join(problems[:_MAX_LISTED])
    if len(problems) > _MAX_LISTED:
        counts = ", ".join(f"{len(v)} {n}" for v, n in ((missing, "missing"),
                           (wrong, "with a wrong shape"), (extra, "unexpected")) if v)
        listed += f"; ... ({counts} in all)"
    raise EfgenError(f"{what} do not match net '{net.name}': {listed}", file=file, fix=fix)


def state_to_flat(state) -> dict[str, np.ndarray]:
    """Parameters and batchnorm buffers of ``state`` keyed ``"<layer>.<param>"``.

    The SGD velocity is training-run state, not part of the model, and is left out.
    """
    flat: dict[str, np.ndarray] = {}
    for group in (state.params, state.buffers):
        for lname, arrays in group.items():
            for n, a in arrays.items():
                flat[f"{lname}.{n}"] = a
    return flat


def save_weights(path: str | Path, params: dict[str, np.ndarray]) -> None:
    """Write ``params`` (``{"<layer>.<param>": array}``) as an uncompressed npz at ``path``.

    The path is used as given (numpy would otherwise append ``.npz``).
    """
    path = Path(path)
    arrays = {str(k): np.asarray(v) for k, v in params.items()}
    try:
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as exc:
        raise EfgenError(f"cannot write weights ({exc.strerror or exc.__class__.__name__})",
                         file=str(path), fix="check that the directory exists and is "
                                             "writable") from None


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Read an npz archive into ``{key: array}``; problems are EfgenErrors naming the file."""
    path = Path(path)
    fix = "pass an .npz archive written by 'efgen import --weights' or save_weights()"
    if not path.is_file():
        raise EfgenError("weights file not found", file=str(path), fix="check the path")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise EfgenError("not an npz archive (a single .npy array?)", file=str(path),
                             fix=fix)
        with z:
            return {k: np.asarray(z[k]) for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else exc.__class__.__name__
        raise EfgenError(f"cannot read weights ({reason})", file=str(path), fix=fix) from None
