/* rnn_tmpl.h - SIMD bodies of the fused recurrent cell kernels, written once with the vm_*
 * macros of vmath.h and included by rnn.c once per (ISA, dtype) pair (isa_each.h, scalar
 * generic path included). Each works on rows [r0, r1) of one step, single-threaded; rnn.c
 * splits the rows over threads. Contracts: rnn.h. */

/* full vector or the first r lanes */
#define RNN_LD(p, r) ((r) == VM_W ? vm_load(p) : vm_load_part(p, r))
#define RNN_ST(p, r, v)                  \
    do {                                 \
        if ((r) == VM_W) vm_store(p, v); \
        else vm_store_part(p, r, v);     \
    } while (0)
#define RNN_COLS(j, r, H) \
    for (int64_t j = 0, r = ((H) < VM_W ? (H) : VM_W); j < (H); j += VM_W, r = ((H) - j < VM_W ? (H) - j : VM_W))

static void VM_FN(rnn_fwd_rows)(int kind, vm_s *g, vm_s *h, int64_t ldh, vm_s *h2, int64_t ldh2,
                                int64_t r0, int64_t r1, int64_t H) {
    const vm_t zero = vm_zero();
    for (int64_t b = r0; b < r1; b++) {
        vm_s *gb = g + b * H, *hb = h + b * ldh, *h2b = h2 ? h2 + b * ldh2 : 0;
        RNN_COLS(j, r, H) {
            vm_t x = RNN_LD(gb + j, r);
            vm_t y = kind == CE_RNN_RELU ? vm_max(zero, x) : VM_FN(vtanh)(x);
            RNN_ST(gb + j, r, y);
            RNN_ST(hb + j, r, y);
            if (h2b) RNN_ST(h2b + j, r, y);
        }
    }
}

static void VM_FN(rnn_bwd_rows)(int kind, vm_s *dg, const vm_s *g, const vm_s *dh, int64_t lddh,
                                const vm_s *dh2, int64_t lddh2, int64_t r0, int64_t r1,
                                int64_t H) {
    const vm_t zero = vm_zero(), one = vm_set1((vm_s)1);
    for (int64_t b = r0; b < r1; b++) {
        vm_s *dgb = dg + b * H;
        const vm_s *gb = g + b * H, *dhb = dh + b * lddh, *dh2b = dh2 ? dh2 + b * lddh2 : 0;
        RNN_COLS(j, r, H) {
            vm_t y = RNN_LD(gb + j, r), d = RNN_LD(dhb + j, r);
            if (dh2b) d = vm_add(d, RNN_LD(dh2b + j, r));
            vm_t v = kind == CE_RNN_RELU ? vm_sel(vm_gt(y, zero), d, zero)
                                         : vm_mul(d, vm_fnmadd(y, y, one));
            RNN_ST(dgb + j, r, v);
        }
    }
}

static void VM_FN(lstm_fwd_rows)(vm_s *g, vm_s *c, vm_s *h, int64_t ldh, vm_s *h2, int64_t ldh2,
                                 int64_t r0, int64_t r1, int64_t H) {
    for (int64_t b = r0; b < r1; b++) {
        vm_s *gb = g + b * 4 * H, *cb = c + b * H, *hb = h + b * ldh, *h2b = h2 ? h2 + b * ldh2 : 0;
        RNN_COLS(j, r, H) {
            vm_t i = VM_FN(vsigmoid)(RNN_LD(gb + j, r));
            vm_t f = VM_FN(vsigmoid)(RNN_LD(gb + H + j, r));
            vm_t gg = VM_FN(vtanh)(RNN_LD(gb + 2 * H + j, r));
            vm_t o = VM_FN(vsigmoid)(RNN_LD(gb + 3 * H + j, r));
            vm_t cn = vm_fmadd(f, RNN_LD(cb + j, r), vm_mul(i, gg));
            vm_t hn = vm_mul(o, VM_FN(vtanh)(cn));
            RNN_ST(gb + j, r, i);
            RNN_ST(gb + H + j, r, f);
            RNN_ST(gb + 2 * H + j, r, gg);
            RNN_ST(gb + 3 * H + j, r, o);
            RNN_ST(cb + j, r, cn);
            RNN_ST(hb + j, r, hn);
            if (h2b) RNN_ST(h2b + j, r, hn);
        }
    }
}

static void VM_FN(lstm_bwd_rows)(vm_s *dg, vm_s *dc, const vm_s *g, const vm_s *cp,
                                 const vm_s *dh, int64_t lddh, const vm_s *dh2, int64_t lddh2,
                                 int64_t r0, int64_t r1, int64_t H) {
    const vm_t one = vm_set1((vm_s)1);
    for (int64_t b = r0; b < r1; b++) {
        vm_s *dgb = dg + b * 4 * H, *dcb = dc + b * H;
        const vm_s *gb = g + b * 4 * H, *cpb = cp + b * H, *dhb = dh + b * lddh;
        const vm_s *dh2b = dh2 ? dh2 + b * lddh2 : 0;
        RNN_COLS(j, r, H) {
            vm_t i = RNN_LD(gb + j, r), f = RNN_LD(gb + H + j, r);
            vm_t gg = RNN_LD(gb + 2 * H + j, r), o = RNN_LD(gb + 3 * H + j, r);
            vm_t cpv = RNN_LD(cpb + j, r);
            vm_t tc = VM_FN(vtanh)(vm_fmadd(f, cpv, vm_mul(i, gg)));
            vm_t d = RNN_LD(dhb + j, r);
            if (dh2b) d = vm_add(d, RNN_LD(dh2b + j, r));
            vm_t dct = vm_fmadd(vm_mul(d, o), vm_fnmadd(tc, tc, one), RNN_LD(dcb + j, r));
            vm_t d_o = vm_mul(vm_mul(d, tc), vm_mul(o, vm_sub(one, o)));
            vm_t d_i = vm_mul(vm_mul(dct, gg), vm_mul(i, vm_sub(one, i)));
            vm_t d_f = vm_mul(vm_mul(dct, cpv), vm_mul(f, vm_sub(one, f)));
            vm_t d_g = vm_mul(vm_mul(dct, i), vm_fnmadd(gg, gg, one));
            RNN_ST(dgb + j, r, d_i);
            RNN_ST(dgb + H + j, r, d_f);
            RNN_ST(dgb + 2 * H + j, r, d_g);
            RNN_ST(dgb + 3 * H + j, r, d_o);
            RNN_ST(dcb + j, r, vm_mul(dct, f));
        }
    }
}

static void VM_FN(gru_fwd_rows)(vm_s *gi, vm_s *h, int64_t ldh, vm_s *h2, int64_t ldh2,
                                const vm_s *gh, const vm_s *hp, int64_t r0, int64_t r1,
                                int64_t H) {
    for (int64_t b = r0; b < r1; b++) {
        vm_s *gib = gi + b * 3 * H, *hb = h + b * ldh, *h2b = h2 ? h2 + b * ldh2 : 0;
        const vm_s *ghb = gh + b * 3 * H, *hpb = hp + b * H;
        RNN_COLS(j, r, H) {
            vm_t rr = VM_FN(vsigmoid)(vm_add(RNN_LD(gib + j, r), RNN_LD(ghb + j, r)));
            vm_t z = VM_FN(vsigmoid)(vm_add(RNN_LD(gib + H + j, r), RNN_LD(ghb + H + j, r)));
            vm_t nn = VM_FN(vtanh)(vm_fmadd(rr, RNN_LD(ghb + 2 * H + j, r), RNN_LD(gib + 2 * H + j, r)));
            vm_t hn = vm_fmadd(z, vm_sub(RNN_LD(hpb + j, r), nn), nn);
            RNN_ST(gib + j, r, rr);
            RNN_ST(gib + H + j, r, z);
            RNN_ST(gib + 2 * H + j, r, nn);
            RNN_ST(hb + j, r, hn);
            if (h2b) RNN_ST(h2b + j, r, hn);
        }
    }
}

static void VM_FN(gru_bwd_rows)(vm_s *dgi, vm_s *dgh, vm_s *dhp, const vm_s *gi, const vm_s *gh,
                                const vm_s *hp, const vm_s *dh, int64_t lddh, const vm_s *dh2,
                                int64_t lddh2, int64_t r0, int64_t r1, int64_t H) {
    const vm_t one = vm_set1((vm_s)1);
    for (int64_t b = r0; b < r1; b++) {
        vm_s *dgib = dgi + b * 3 * H, *dghb = dgh + b * 3 * H, *dhpb = dhp + b * lddh;
        const vm_s *gib = gi + b * 3 * H, *ghb = gh + b * 3 * H, *hpb = hp + b * H;
        const vm_s *dhb = dh + b * lddh, *dh2b = dh2 ? dh2 + b * lddh2 : 0;
        RNN_COLS(j, r, H) {
            vm_t rr = RNN_LD(gib + j, r), z = RNN_LD(gib + H + j, r), nn = RNN_LD(gib + 2 * H + j, r);
            vm_t d = RNN_LD(dhb + j, r);
            if (dh2b) d = vm_add(d, RNN_LD(dh2b + j, r));
            vm_t dnp = vm_mul(vm_mul(d, vm_sub(one, z)), vm_fnmadd(nn, nn, one));
            vm_t dzp = vm_mul(vm_mul(d, vm_sub(RNN_LD(hpb + j, r), nn)), vm_mul(z, vm_sub(one, z)));
            vm_t drp = vm_mul(vm_mul(dnp, RNN_LD(ghb + 2 * H + j, r)), vm_mul(rr, vm_sub(one, rr)));
            RNN_ST(dgib + j, r, drp);
            RNN_ST(dgib + H + j, r, dzp);
            RNN_ST(dgib + 2 * H + j, r, dnp);
            RNN_ST(dghb + j, r, drp);
            RNN_ST(dghb + H + j, r, dzp);
            RNN_ST(dghb + 2 * H + j, r, vm_mul(dnp, rr));
            RNN_ST(dhpb + j, r, vm_mul(d, z));
        }
    }
}
#undef RNN_LD
#undef RNN_ST
#undef RNN_COLS
