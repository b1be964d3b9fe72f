"""What each result of a program should be: the mapping from a program's result keys to
the reference tiling (model.tiling)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import ModelError, PsumOverflowError
from model.hwconfig import CONFIG
from model.program.memory_map import useful_macs
from model.program.isa import Program
from model.requant import Requant
from model.tiling import _pad_channels, os_reference, ws_reference


def _emitted(ref, emit: str, requant: Requant | None) -> np.ndarray:
    """What the SFP emits, [n_oc_tiles, array_size, Ho*Wo]: ReLU(out), out, or its levels."""
    if emit != "requant":
        return ref.out_tiles(relu=emit == "relu")
    if requant is None:
        raise ModelError("a program that emits levels (requant) needs the layer's Requant")
    levels = _pad_channels(requant.apply(ref.out), 0, ref.array_size)
    return levels.reshape(ref.n_oc_tiles, ref.array_size, -1)


@dataclass
class ProgramReference:
    """What the reference tiling says every pmem write and SFP output of a program holds.

    psums[i] is the vector of program.psum_writes[i], outputs[i] that of program.emits[i]
    (lanes = columns, int64); ref is the model.tiling reference they come from."""

    program: Program
    ref: object
    psums: np.ndarray
    outputs: np.ndarray

    def describe_psum(self, i: int) -> str:
        key = self.program.psum_writes[i][1]
        if self.program.dataflow == "ws":
            ict, oct, kij, nij = key
            return f"kij={kij} nij={nij} (ic_tile={ict} oc_tile={oct})"
        return self._describe_pixel(key)

    def describe_output(self, i: int) -> str:
        key = self.program.emits[i]
        if self.program.dataflow == "ws":
            oct, o_nij = key
            return f"o_nij={o_nij} (oc_tile={oct})"
        return self._describe_pixel(key)

    def _describe_pixel(self, key) -> str:
        group, oct, row = key
        return f"output pixel {group * self.program.array_size + row} (group={group} row={row} oc_tile={oct})"

    def output_pixel(self, i: int) -> tuple[int, int]:
        """(oc tile, output pixel) of output i."""
        key = self.program.emits[i]
        if self.program.dataflow == "ws":
            return key
        group, oct, row = key
        return oct, group * self.program.array_size + row

    def arrange(self, outputs: np.ndarray) -> np.ndarray:
        """Output vectors in emit order -> [OC, Ho*Wo] (lanes past the layer dropped)."""
        n, oc, pixels = self.program.array_size, self.ref.OC, self.ref.Ho * self.ref.Wo
        out = np.zeros((-(-oc // n) * n, pixels), dtype=np.int64)
        for i, lanes in enumerate(outputs):
            oct, pixel = self.output_pixel(i)
            if pixel < pixels:
                out[oct * n:(oct + 1) * n, pixel] = lanes
        return out[:oc]

    @property
    def useful_macs(self) -> int:
        return useful_macs(self.ref.IC, self.ref.OC, self.ref.Ho, self.ref.Wo)


def reference_results(program: Program, x_int: np.ndarray, w_int: np.ndarray,
                      psum_bw: int = CONFIG.psum_bw, acc_bw: int = CONFIG.acc_bw, check_widths: bool = True,
                      requant: Requant | None = None) -> ProgramReference:
    """The reference value of every result of `program`. With check_widths, a reference that
    does not fit the hardware widths raises (nothing is compared with wrapped values);
    without, the caller reports overflow itself (the program checker models the SFP).
    A program that emits levels (program.emit "requant") needs the layer's `requant`;
    (x_int, w_int) are the operands the array multiplies (a signed input's digits,
    model.program.signed_input)."""
    n = program.array_size
    psum_keys = np.array([key for _, key in program.psum_writes], dtype=np.int64)
    out_keys = np.array(program.emits, dtype=np.int64)
    if program.dataflow == "ws":
        ref = ws_reference(x_int, w_int, array_size=n, psum_bw=psum_bw, acc_bw=acc_bw,
                           ic_tile_shift=program.ic_tile_shift, emit=program.emit, a_bit=program.a_bit)
        ict, oct, kij, nij = psum_keys.reshape(-1, 4).T
        psums = ref.psum[ict, oct, :, nij, kij]
        oct, o_nij = out_keys.reshape(-1, 2).T
        outputs = _emitted(ref, program.emit, requant)[oct, :, o_nij]
    else:
        ref = os_reference(x_int, w_int, array_size=n, psum_bw=psum_bw)
        group, oct, row = psum_keys.reshape(-1, 3).T
        psums = ref.out[group, oct, row]
        group, oct, row = out_keys.reshape(-1, 3).T
        outputs = ref.out_relu[group, oct, row]
    if program.dataflow != "ws" and program.emit != "relu":
        raise ModelError(f"an {program.dataflow} program emits ReLU outputs only, not {program.emit!r}")
    if check_widths and ref.overflows:
        raise PsumOverflowError(f"the reference does not fit the hardware widths: {ref.overflows[0]}")
    return ProgramReference(program, ref, np.ascontiguousarray(psums, dtype=np.int64),
                            np.ascontiguousarray(outputs, dtype=np.int64))
