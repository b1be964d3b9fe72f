"""Seed-notebook-style slow reference (ports of the two notebooks' loops, on CPU).

Used by the tests (as an independent oracle: tiling math and byte-exact files) and by
``model bench`` (to time the loop implementation).  The code follows the notebooks
cell by cell: an ``nn.Linear`` per (kij, ic tile, oc tile, nij) position, the SFP
accumulation loop, and the character-by-character writer loops.  Only the notebooks'
slips listed here are fixed, plus what is needed to make a loop total:

* the OS golden decodes activations as unsigned (the notebook used ``dec_twos``);
* the OS activation index is ``(oi + ki) * Wpad + (oj + kj)``;
* header lines are written (notebook 003 had them commented out; notebook 000 and
  the README section "Classic text vectors" write them) with the canonical notebook strings;
* ``w_tile`` is indexed ``[oc_tile, ic_tile]`` (the notebook's flat index
  ``oc_tile * len(oc_tileg) + ic_tile`` collides when there are more ic than oc tiles);
* channel counts are zero-padded to a multiple of the array size (the notebook's
  ``int(len(icg) / array_size)`` silently dropped the remainder), and OS lanes past
  the last output pixel are written as zero.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn as nn

ARRAY_SIZE = 8

H_ACT = ('#time0row7[msb-lsb],time0row6[msb-lst],....,time0row0[msb-lst]#\n',
         '#time1row7[msb-lsb],time1row6[msb-lst],....,time1row0[msb-lst]#\n',
         '#................#\n')
H_WGT = ('#col0row7[msb-lsb],col0row6[msb-lst],....,col0row0[msb-lst]#\n',
         '#col1row7[msb-lsb],col1row6[msb-lst],....,col1row0[msb-lst]#\n',
         '#................#\n')
H_PSUM = ('#time0col7[msb-lsb],time0col6[msb-lst],....,time0col0[msb-lst]#\n',
          '#time1col7[msb-lsb],time1col6[msb-lst],....,time1col0[msb-lst]#\n',
          '#................#\n')


def _pad_to(n, m):
    return -(-n // m) * m


def prepare(x_int, w_int, array_size=ARRAY_SIZE):
    """Notebook variables: a_pad [ICp, Hp*Wp] and w_int [OCp, ICp, 9] (float32 tensors)."""
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.float32)
    w = torch.as_tensor(np.asarray(w_int), dtype=torch.float32)
    ic, ocn = x.size(0), w.size(0)
    icp, ocp = _pad_to(ic, array_size), _pad_to(ocn, array_size)
    a_int = torch.zeros(icp, x.size(1), x.size(2))
    a_int[:ic] = x
    weight_int = torch.zeros(ocp, icp, 3, 3)
    weight_int[:ocn, :ic] = w
    padding = 1
    nig = range(a_int.size(1))
    njg = range(a_int.size(2))
    a_pad = torch.zeros(len(range(icp)), len(nig) + padding * 2, len(njg) + padding * 2)
    a_pad[:, padding:padding + len(nig), padding:padding + len(njg)] = a_int
    a_pad = torch.reshape(a_pad, (a_pad.size(0), -1))
    w_int = torch.reshape(weight_int, (weight_int.size(0), weight_int.size(1), -1))
    return a_pad, w_int


def seed_ws_psum(x_int, w_int, array_size=ARRAY_SIZE):
    """Notebook 003 cell 15: psum[ic_tile, oc_tile, :, nij, kij] by nn.Linear per position.

    Returns int64 numpy ``[n_ic_tiles, n_oc_tiles, array_size, Hp*Wp, 9]``.
    """
    a_pad, w_int = prepare(x_int, w_int, array_size)
    icg = range(int(w_int.size(1)))
    ocg = range(int(w_int.size(0)))
    ic_tileg = range(int(len(icg) / array_size))
    oc_tileg = range(int(len(ocg) / array_size))
    kijg = range(w_int.size(2))

    a_tile = torch.zeros(len(ic_tileg), array_size, a_pad.size(1))
    w_tile = torch.zeros(len(oc_tileg), len(ic_tileg), array_size, array_size, len(kijg))
    for ic_tile in ic_tileg:
        a_tile[ic_tile, :, :] = a_pad[ic_tile * array_size:(ic_tile + 1) * array_size, :]
    for ic_tile in ic_tileg:
        for oc_tile in oc_tileg:
            w_tile[oc_tile, ic_tile, :, :, :] = \
                w_int[oc_tile * array_size:(oc_tile + 1) * array_size,
                      ic_tile * array_size:(ic_tile + 1) * array_size, :]

    p_nijg = range(a_pad.size(1))
    psum = torch.zeros(len(ic_tileg), len(oc_tileg), array_size, len(p_nijg), len(kijg))
    for kij in kijg:
        for ic_tile in ic_tileg:
            for oc_tile in oc_tileg:
                for nij in p_nijg:
                    m = nn.Linear(array_size, array_size, bias=False)
                    m.weight = torch.nn.Parameter(w_tile[oc_tile, ic_tile, :, :, kij])
                    psum[ic_tile, oc_tile, :, nij, kij] = m(a_tile[ic_tile, :, nij])
    return psum.detach().round().to(torch.int64).numpy()


def seed_accumulate(psum, H, W, array_size=ARRAY_SIZE):
    """Notebook 000 cells 9/10 (SFP accumulation), extended over ic tiles.

    ``psum`` int [nI, nO, array_size, Hp*Wp, 9] -> int64 numpy [OCp, Ho*Wo] (before ReLU).
    """
    psum = torch.as_tensor(np.asarray(psum), dtype=torch.float32)
    ic_tileg = range(psum.size(0))
    oc_tileg = range(psum.size(1))
    kijg = range(psum.size(4))
    ki_dim = int(math.sqrt(psum.size(4)))
    a_pad_ni_dim = W + 2
    stride = 1
    o_ni_dim = int((a_pad_ni_dim - (ki_dim - 1) - 1) / stride + 1)
    o_nijg = range(H * o_ni_dim)
    out = torch.zeros(len(oc_tileg) * array_size, len(o_nijg))
    for o_nij in o_nijg:
        for kij in kijg:
            for ic_tile in ic_tileg:
                for oc_tile in oc_tileg:
                    out[oc_tile * array_size:(oc_tile + 1) * array_size, o_nij] = \
                        out[oc_tile * array_size:(oc_tile + 1) * array_size, o_nij] + \
                        psum[ic_tile, oc_tile, :,
                             int(o_nij / o_ni_dim) * a_pad_ni_dim + o_nij % o_ni_dim
                             + int(kij / ki_dim) * a_pad_ni_dim + kij % ki_dim, kij]
    return out.round().to(torch.int64).numpy()


# ----------------------------------------------------------------------------------
# writer loops (notebook 000 / 003 cells, headers written)
# ----------------------------------------------------------------------------------
def write_activation(path, X):
    """Notebook cell 11 (000) / WS activation cell (003). X = a_tile [row, nij]."""
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    bit_precision = 4
    file = open(path, 'w')
    for h in H_ACT:
        file.write(h)
    for i in range(X.size(1)):  # time step
        for j in range(X.size(0)):  # row #
            X_bin = '{0:04b}'.format(round(X[7 - j, i].item()))
            for k in range(bit_precision):
                file.write(X_bin[k])
        file.write('\n')
    file.close()


def write_weight(path, W):
    """WS weight cell (003). W = w_tile[col, row] for one kij."""
    W = torch.as_tensor(np.asarray(W), dtype=torch.float32)
    bit_precision = 4
    file = open(path, 'w')
    for h in H_WGT:
        file.write(h)
    for col in range(W.size(1)):
        for row in range(W.size(0)):
            W_value = W[col, 7 - row]
            if W_value < 0:
                W_value += 2 ** bit_precision
            W_bin = '{0:04b}'.format(round(W_value.item()))
            for k in range(bit_precision):
                file.write(W_bin[k])
        file.write('\n')
    file.close()


def write_psum(path, psum, k):
    """PSUM writing cell (000). psum [col, nij, kij] of one tile; writes kij ``k``."""
    psum = torch.as_tensor(np.asarray(psum), dtype=torch.float64)
    bit_precision = 16
    file = open(path, 'w')
    for h in H_PSUM:
        file.write(h)
    for i in range(psum.size(1)):  # nijg #
        for j in range(psum.size(0)):  # col #
            temp = round(psum[7 - j, i, k].item())
            if temp < 0:
                temp = temp + 65536
            W_bin = '{0:016b}'.format(temp)
            for b in range(bit_precision):
                file.write(W_bin[b])
        file.write('\n')
    file.close()


def write_out(path, out):
    """Output writing cell (003). out [col, o_nij] after ReLU."""
    out = torch.as_tensor(np.asarray(out), dtype=torch.float64)
    bit_precision = 16
    file = open(path, 'w')
    for h in H_PSUM:
        file.write(h)
    for t in range(out.size(1)):
        for col in range(out.size(0)):
            p_value = out[7 - col, t]
            if p_value < 0:
                p_value += 2 ** bit_precision
            psum_bin = '{0:016b}'.format(round(p_value.item()))
            for k in range(bit_precision):
                file.write(psum_bin[k])
        file.write('\n')
    file.close()


def write_acc_address(path, H, W):
    """acc_address.txt as the README section "Classic text vectors" describes it (no
    notebook cell exists):
    for o_nij, for kij: address of psum(kij, nij) = kij * n_nij + nij, 11 bits."""
    Wpad = W + 2
    n_nij = (H + 2) * Wpad
    file = open(path, 'w')
    for o_nij in range(H * W):
        for kij in range(9):
            nij = int(o_nij / W) * Wpad + o_nij % W + int(kij / 3) * Wpad + kij % 3
            file.write('{0:011b}'.format(kij * n_nij + nij))
            file.write('\n')
    file.close()


def enc_twos(v, bits):
    v = int(round(float(v)))
    return v & ((1 << bits) - 1)


def dec_twos(u, bits):
    u = int(u) & ((1 << bits) - 1)
    if u >= (1 << (bits - 1)):
        u -= (1 << bits)
    return u


def write_os(out_dir, x_int, w_int, nij_out_base=0, oc_tile=0,
             act_name="activation_os.txt", wgt_name="weight_os.txt", out_name="out_os.txt"):
    """Notebook 003 output-stationary cell (slips fixed), all input channels."""
    a_pad, w_int = prepare(x_int, w_int)
    H, W = np.asarray(x_int).shape[1:]
    bw = 4
    psum_bw = 16
    len_kij = 9
    USE_IC = a_pad.size(0)
    row = 8
    col = 8
    stride = 1
    kij_num = w_int.size(2)
    ki_dim = int(math.sqrt(kij_num))
    Hpad, Wpad = H + 2, W + 2
    Hout = (Hpad - ki_dim) // stride + 1
    Wout = (Wpad - ki_dim) // stride + 1
    oc0 = oc_tile * col

    with open(os.path.join(out_dir, act_name), "w") as f:
        for h in H_ACT:
            f.write(h)
        for in_ch in range(USE_IC):
            for kij in range(len_kij):
                ki = kij // ki_dim
                kj = kij % ki_dim
                for lane_row in range(row - 1, -1, -1):
                    nij_out = nij_out_base + lane_row
                    oi = nij_out // Wout
                    oj = nij_out % Wout
                    y = oi * stride + ki
                    x = oj * stride + kj
                    idx = y * Wpad + x
                    a_u4 = enc_twos(a_pad[in_ch, idx].item(), bw) if nij_out < Hout * Wout else 0
                    f.write(f"{a_u4:0{bw}b}")
                f.write("\n")

    with open(os.path.join(out_dir, wgt_name), "w") as f:
        for h in H_WGT:
            f.write(h)
        for in_ch in range(USE_IC):
            for kij in range(len_kij):
                for lane_oc in range(col - 1, -1, -1):
                    w_u4 = enc_twos(w_int[oc0 + lane_oc, in_ch, kij].item(), bw)
                    f.write(f"{w_u4:0{bw}b}")
                f.write("\n")

    with open(os.path.join(out_dir, out_name), "w") as f:
        for h in H_PSUM:
            f.write(h)
        for lane_row in range(row):
            nij_out = nij_out_base + lane_row
            oi = nij_out // Wout
            oj = nij_out % Wout
            acc = [0] * col
            for in_ch in range(USE_IC):
                for kij in range(len_kij):
                    ki = kij // ki_dim
                    kj = kij % ki_dim
                    y = oi * stride + ki
                    x = oj * stride + kj
                    idx = y * Wpad + x
                    if nij_out >= Hout * Wout:
                        continue
                    a_s = int(round(a_pad[in_ch, idx].item()))      # unsigned (slip fixed)
                    for oc in range(col):
                        w_u4 = enc_twos(w_int[oc0 + oc, in_ch, kij].item(), bw)
                        w_s = dec_twos(w_u4, bw)
                        acc[oc] += a_s * w_s
            for oc in range(col):
                if acc[oc] < 0:
                    acc[oc] = 0
            line = ""
            for oc in range(col - 1, -1, -1):
                u16 = enc_twos(acc[oc], psum_bw)
                line += f"{u16:0{psum_bw}b}"
            f.write(line + "\n")


def write_ws(out_dir, x_int, w_int, array_size=ARRAY_SIZE):
    """All WS files with the notebook loops (tiling by nn.Linear, then the writers)."""
    x = np.asarray(x_int)
    H, W = x.shape[1:]
    psum = seed_ws_psum(x_int, w_int, array_size)
    nI, nO = psum.shape[:2]
    out = np.maximum(seed_accumulate(psum, H, W, array_size), 0)
    a_pad, w_int_t = prepare(x_int, w_int, array_size)
    single = nI == 1 and nO == 1
    for i in range(nI):
        write_activation(os.path.join(out_dir, f"activation_tile{i}.txt"),
                         a_pad[i * 8:(i + 1) * 8])
    for i in range(nI):
        for o in range(nO):
            for k in range(9):
                write_weight(os.path.join(out_dir, f"weight_itile{i}_otile{o}_kij{k}.txt"),
                             w_int_t[o * 8:(o + 1) * 8, i * 8:(i + 1) * 8, k])
                name = f"psum_kij{k}.txt" if single else f"psum_itile{i}_otile{o}_kij{k}.txt"
                write_psum(os.path.join(out_dir, name), psum[i, o], k)
    for o in range(nO):
        name = "out.txt" if single else f"out_otile{o}.txt"
        write_out(os.path.join(out_dir, name), out[o * 8:(o + 1) * 8])
    write_acc_address(os.path.join(out_dir, "acc_address.txt"), H, W)
    return psum, out
