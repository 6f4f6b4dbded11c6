"""The time loops of the hand-written cells, as autograd functions with their own backward.

The input projection of all time steps is one matmul done by the caller; only the
recurrent matmul and a few fused elementwise ops run per step. The hand-written
backward also runs one matmul per step and computes the weight gradients of all
steps in one matmul (autograd through the Python loop cost 2-3x more).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from seqpipe.architectures.activations import ACTIVATIONS, times_grad


class LSTMRecurrence(torch.autograd.Function):
    """One LSTM direction over time-major pre-projected inputs.

    Inputs: ``xproj (T, B, G*H)`` (``x @ W_ih.T + b_ih + b_hh``), ``w_hh (G*H, H)``,
    ``peep`` (``(n, H)`` or empty), ``h0``, ``c0`` ``(B, H)``. Returns every step's
    ``h`` and ``c``, ``(T, B, H)`` each.

    Per-step views are split off once with ``unbind`` and results are written with
    ``out=``: at these sizes the cost of a step is mostly per-op overhead.
    """

    @staticmethod
    def forward(ctx, xproj, w_hh, peep, h0, c0, act_name, ract_name, cifg):  # type: ignore[override]
        act, ract = ACTIVATIONS[act_name], ACTIVATIONS[ract_name]
        steps, batch, _ = xproj.shape
        hidden = w_hh.shape[1]
        gates = 3 if cifg else 4
        has_peep = peep.numel() > 0
        w_t = w_hh.t()
        acts = torch.empty_like(xproj)  # post-activation gates, kept for backward
        cells = xproj.new_empty(steps, batch, hidden)
        outs = xproj.new_empty(steps, batch, hidden)
        # Gate slots: LSTM (i, f, g, o), CIFG (i, g, o); n_in gates read c_prev.
        n_in = 1 if cifg else 2
        a4 = acts.view(steps, batch, gates, hidden)
        a_steps, x_steps = acts.unbind(0), xproj.unbind(0)
        in_steps = a4[:, :, :n_in].unbind(0)
        i_steps, g_steps, o_steps = (a4[:, :, k].unbind(0) for k in (0, gates - 2, gates - 1))
        f_steps = a4[:, :, 1].unbind(0)
        c_steps, h_steps = cells.unbind(0), outs.unbind(0)
        if has_peep:
            p_in, p_o = peep[:n_in], peep[n_in]
        cell_outs = []  # a(c) of every step
        h, c = h0, c0
        for t in range(steps):
            torch.addmm(x_steps[t], h, w_t, out=a_steps[t])
            if has_peep:
                in_steps[t].addcmul_(p_in, c.unsqueeze(1))
            ract.inplace(in_steps[t])
            act.inplace(g_steps[t])
            o = o_steps[t]
            if not has_peep:  # otherwise o waits for the new c
                ract.inplace(o)
            c_new = c_steps[t]
            if cifg:  # c = (1 - i) c + i g = c + i (g - c)
                torch.addcmul(c, i_steps[t], g_steps[t] - c, out=c_new)
            else:
                torch.mul(f_steps[t], c, out=c_new).addcmul_(i_steps[t], g_steps[t])
            if has_peep:
                ract.inplace(o.addcmul_(p_o, c_new))
            ac = act.apply(c_new)
            cell_outs.append(ac)
            h = torch.mul(o, ac, out=h_steps[t])
            c = c_new
        cell_outs_all = torch.stack(cell_outs) if act.backward is not None else cells
        ctx.save_for_backward(acts, cells, cell_outs_all, outs, h0, c0, w_hh, peep)
        ctx.config = (act, ract, cifg, has_peep)
        ctx.set_materialize_grads(False)
        return outs, cells

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outs, d_cells):  # type: ignore[override]
        acts, cells, cell_outs, outs, h0, c0, w_hh, peep = ctx.saved_tensors
        act, ract, cifg, has_peep = ctx.config
        steps, batch, width = acts.shape
        hidden = w_hh.shape[1]
        gates = width // hidden
        n_in = 1 if cifg else 2
        a4 = acts.view(steps, batch, gates, hidden)
        c_prev = torch.cat([c0.unsqueeze(0), cells[:-1]])
        i, g, o = a4[:, :, 0], a4[:, :, gates - 2], a4[:, :, gates - 1]
        # Each pre-activation gradient of a step is dc * m (gates i, f, g) or
        # dh * m (gate o); the multipliers m of all steps are computed at once here
        # so the sequential loop below is a handful of ops per step.
        if cifg:
            multipliers = [times_grad(ract, i, g - c_prev)]
            carry = 1 - i  # dc_prev = dc * carry
        else:
            f = a4[:, :, 1]
            multipliers = [times_grad(ract, i, g), times_grad(ract, f, c_prev)]
            carry = f
        multipliers += [times_grad(act, g, i), times_grad(ract, o, cell_outs)]
        m = torch.stack(multipliers, dim=2)
        k = times_grad(act, cell_outs, o)  # dc += dh * k
        if has_peep:
            k = torch.addcmul(k, m[:, :, gates - 1], peep[n_in])
            for gate in range(n_in):
                carry = torch.addcmul(carry, m[:, :, gate], peep[gate])
        d_gates = torch.empty_like(acts)
        dg4 = d_gates.view(steps, batch, gates, hidden)
        dg_c, dg_o = dg4[:, :, : gates - 1].unbind(0), dg4[:, :, gates - 1].unbind(0)
        m_c, m_o = m[:, :, : gates - 1].unbind(0), m[:, :, gates - 1].unbind(0)
        dg_steps, k_steps, carry_steps = d_gates.unbind(0), k.unbind(0), carry.unbind(0)
        dh_steps = torch.zeros_like(outs).unbind(0) if d_outs is None else d_outs.unbind(0)
        dc_ext = None if d_cells is None else d_cells.unbind(0)
        dh, dc_rec = dh_steps[-1], None  # dh: the full gradient of the step's h
        for t in range(steps - 1, -1, -1):
            dc = dh * k_steps[t] if dc_rec is None else torch.addcmul(dc_rec, dh, k_steps[t])
            if dc_ext is not None:
                dc = dc + dc_ext[t]
            torch.mul(m_c[t], dc.unsqueeze(1), out=dg_c[t])
            torch.mul(m_o[t], dh, out=dg_o[t])
            # the previous step's h gradient: its own output's plus the recurrent one
            dh = torch.addmm(dh_steps[t - 1], dg_steps[t], w_hh) if t else dg_steps[0] @ w_hh
            dc_rec = dc * carry_steps[t]
        h_prev = torch.cat([h0.unsqueeze(0), outs[:-1]])
        d_w_hh = d_gates.view(-1, width).t().mm(h_prev.view(-1, hidden))
        d_peep = None
        if has_peep and ctx.needs_input_grad[2]:
            d_in = (dg4[:, :, :n_in] * c_prev.unsqueeze(2)).sum((0, 1))
            d_o = (dg4[:, :, gates - 1] * cells).sum((0, 1))
            d_peep = torch.cat([d_in, d_o.unsqueeze(0)])
        return d_gates, d_w_hh, d_peep, dh, dc_rec, None, None, None


class GRURecurrence(torch.autograd.Function):
    """One GRU direction (torch's formulation) over time-major projected inputs.

    Inputs: ``xproj (T, B, 3H)`` (``x @ W_ih.T + b_ih``, gates ``r, z, n``),
    ``w_hh (3H, H)``, ``b_hh (3H,)``, ``h0 (B, H)``. Returns every step's ``h``.
    """

    @staticmethod
    def forward(ctx, xproj, w_hh, b_hh, h0, act_name, ract_name):  # type: ignore[override]
        act, ract = ACTIVATIONS[act_name], ACTIVATIONS[ract_name]
        steps, batch, _ = xproj.shape
        hidden = w_hh.shape[1]
        w_t = w_hh.t()
        acts = torch.empty_like(xproj)  # r, z, n after activation
        rec = torch.empty_like(xproj)  # R h + b_hh (its n block is needed by backward)
        outs = xproj.new_empty(steps, batch, hidden)
        two = 2 * hidden
        rec_steps, h_steps = rec.unbind(0), outs.unbind(0)
        x_rz, x_n = xproj[:, :, :two].unbind(0), xproj[:, :, two:].unbind(0)
        rec_rz, rec_n = rec[:, :, :two].unbind(0), rec[:, :, two:].unbind(0)
        a_rz, a_n = acts[:, :, :two].unbind(0), acts[:, :, two:].unbind(0)
        r_steps, z_steps = acts[:, :, :hidden].unbind(0), acts[:, :, hidden:two].unbind(0)
        h = h0
        for t in range(steps):
            torch.addmm(b_hh, h, w_t, out=rec_steps[t])
            ract.inplace(torch.add(x_rz[t], rec_rz[t], out=a_rz[t]))
            n = act.inplace(torch.addcmul(x_n[t], r_steps[t], rec_n[t], out=a_n[t]))
            h = torch.addcmul(n, z_steps[t], h - n, out=h_steps[t])
        ctx.save_for_backward(acts, rec, outs, h0, w_hh)
        ctx.config = (act, ract)
        return outs

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outs):  # type: ignore[override]
        acts, rec, outs, h0, w_hh = ctx.saved_tensors
        act, ract = ctx.config
        steps, batch, width = acts.shape
        hidden = w_hh.shape[1]
        a3 = acts.view(steps, batch, 3, hidden)
        r, z, n = a3[:, :, 0], a3[:, :, 1], a3[:, :, 2]
        h_prev = torch.cat([h0.unsqueeze(0), outs[:-1]])
        # Every pre-activation gradient of a step is dh times a multiplier: precompute them.
        m_n = times_grad(act, n, 1 - z)  # of d(W_n x + b_in)
        m = torch.empty_like(a3)  # of d(R h + b_hh), gates r, z, n
        m[:, :, 0] = times_grad(ract, r, m_n * rec.view(steps, batch, 3, hidden)[:, :, 2])
        m[:, :, 1] = times_grad(ract, z, h_prev - n)
        torch.mul(m_n, r, out=m[:, :, 2])
        d_rec = torch.empty_like(acts)
        d_h = torch.empty_like(outs)
        m_steps, z_steps = m.unbind(0), z.unbind(0)
        dr_steps = d_rec.view(steps, batch, 3, hidden).unbind(0)
        drec_flat, dh_out, dh_ext = d_rec.unbind(0), d_h.unbind(0), d_outs.unbind(0)
        dh = dh_out[-1].copy_(dh_ext[-1])  # the full gradient of the step's h
        for t in range(steps - 1, -1, -1):
            torch.mul(m_steps[t], dh.unsqueeze(1), out=dr_steps[t])
            # the previous step's h gradient: its own output's, through z, through R
            if t:
                base = torch.addcmul(dh_ext[t - 1], dh, z_steps[t])
                dh = torch.addmm(base, drec_flat[t], w_hh, out=dh_out[t - 1])
            else:
                dh = torch.addmm(dh * z_steps[0], drec_flat[0], w_hh)
        d_in = d_rec.clone()
        d_in.view(steps, batch, 3, hidden)[:, :, 2] = d_h * m_n
        d_w_hh = d_rec.view(-1, width).t().mm(h_prev.view(-1, hidden))
        return d_in, d_w_hh, d_rec.sum((0, 1)), dh, None, None
