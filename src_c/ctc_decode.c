/* ctc_decode.c - CTC prefix beam search (ctcdecode's algorithm without a language model; see
 * ctc.h for the contract).
 *
 * Each beam prefix is a node of a prefix tree (parent, last label) holding the log-probability
 * of the frames so far ending in blank (pb) and in its last label (pnb). Per frame, for every
 * kept class c (sorted by probability, cut by cutoff_prob / cutoff_top_n) and every prefix p:
 *   c == blank:        p.pb'  += P(c) * (p.pb + p.pnb)
 *   c == last(p):      p.pnb' += P(c) * p.pnb;   (p+c).pnb' += P(c) * p.pb   (repeat needs a blank)
 *   otherwise:         (p+c).pnb' += P(c) * (p.pb + p.pnb)
 * (sums in log space). Equal prefixes merge: a node is found by (parent, label) in a hash table,
 * so a labeling has one node however it was reached; a prefix that is new this frame is a
 * pending candidate (found by a second, per-frame hash table) and becomes a node only if it
 * survives. The best B candidates by log(pb + pnb) survive each frame (quickselect, then sort;
 * ties broken by candidate order, so the result is deterministic). Nodes never die: a pruned
 * prefix that comes back is the same node (its label start frame kept). Nodes <= 1 + T*B.
 * The start frame of a label is the frame whose extension (the probability of the prefix
 * before it times the label's) was the most probable: where the label most probably starts.
 * One utterance per thread; each thread owns its workspace. The *_ref variant finds prefixes by
 * linear scans instead of hash tables (same results, for tests). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cengine.h"

typedef struct {
    int linear;   /* 1: linear scans (reference), 0: hash tables */
    int64_t C, B;
    /* nodes (persistent within an utterance) */
    int64_t nn, ncap;
    int32_t *parent, *label, *tstep, *slot, *stamp, *nkids;
    double *lpc;   /* best log-probability of an extension that started the node's label */
    double *pb, *pnb, *score;
    /* node hash: (parent, label) -> node id, -1 empty */
    int32_t *nh;
    int64_t nhcap;
    /* candidates of the current frame */
    int64_t nc, ccap;
    int32_t *cnode, *cpar, *clab, *ctstep, *order;
    double *clpc;
    double *cb, *cnb, *cscore;
    /* pending hash: (parent, label) -> candidate slot, valid when phst == frame stamp */
    int32_t *ph, *phst;
    int64_t phcap;
    /* beam */
    int32_t *beam, *nbeam;
    int64_t nb;
    /* classes of a frame */
    int32_t *cls;
    float *clv;
    /* threshold pass: node of each (class, prefix) extension, values of the new ones */
    int32_t *qs;
    double *vals;
} dec_ws;

static inline double lse2(double a, double b) {
    if (a < b) { double t = a; a = b; b = t; }
    if (b == -INFINITY) return a;
    return a + log1p(exp(b - a));
}

static inline uint64_t dec_hash(int64_t parent, int64_t label) {
    uint64_t h = (uint64_t)parent * 1000003u + (uint64_t)label;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

static void ws_free(dec_ws *w) {
    void *ps[] = {w->parent, w->label, w->tstep, w->slot, w->stamp, w->nkids, w->lpc, w->pb, w->pnb,
                  w->score, w->nh, w->cnode, w->cpar, w->clab, w->ctstep, w->order, w->clpc,
                  w->cb, w->cnb, w->cscore, w->ph, w->phst, w->beam, w->nbeam, w->cls, w->clv,
                  w->qs, w->vals};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) free(ps[i]);
    memset(w, 0, sizeof(*w));
}

#define GROW(p, n) ((p) = realloc((p), sizeof(*(p)) * (size_t)(n)))

static int ws_nodes_reserve(dec_ws *w, int64_t need) {
    if (need <= w->ncap) return 0;
    int64_t cap = w->ncap ? w->ncap : 1024;
    while (cap < need) cap *= 2;
    if (!GROW(w->parent, cap) || !GROW(w->label, cap) || !GROW(w->tstep, cap) ||
        !GROW(w->slot, cap) || !GROW(w->stamp, cap) || !GROW(w->nkids, cap) ||
        !GROW(w->lpc, cap) || !GROW(w->pb, cap) ||
        !GROW(w->pnb, cap) || !GROW(w->score, cap))
        return -1;
    w->ncap = cap;
    return 0;
}

static int ws_init(dec_ws *w, int64_t C, int64_t B, int64_t maxcls, int linear) {
    memset(w, 0, sizeof(*w));
    w->linear = linear;
    w->C = C;
    w->B = B;
    w->ccap = B * (maxcls + 1) + 1;
    w->phcap = 16;
    while (w->phcap < 2 * w->ccap) w->phcap *= 2;
    if (!GROW(w->cnode, w->ccap) || !GROW(w->cpar, w->ccap) || !GROW(w->clab, w->ccap) ||
        !GROW(w->ctstep, w->ccap) || !GROW(w->order, w->ccap) || !GROW(w->clpc, w->ccap) ||
        !GROW(w->cb, w->ccap) || !GROW(w->cnb, w->ccap) || !GROW(w->cscore, w->ccap) ||
        !GROW(w->beam, B) || !GROW(w->nbeam, B) || !GROW(w->cls, C) || !GROW(w->clv, C) ||
        !GROW(w->qs, w->ccap) || !GROW(w->vals, w->ccap))
        return -1;
    if (!linear && (!GROW(w->ph, w->phcap) || !GROW(w->phst, w->phcap))) return -1;
    if (ws_nodes_reserve(w, 1024)) return -1;
    return 0;
}

/* node table: rebuilt when it passes half full */
static int nh_insert(dec_ws *w, int32_t id) {
    if (2 * (w->nn + 1) > w->nhcap) {
        int64_t cap = w->nhcap ? w->nhcap * 2 : 4096;
        while (2 * (w->nn + 1) > cap) cap *= 2;
        free(w->nh);
        w->nh = malloc(sizeof(int32_t) * cap);
        if (!w->nh) return -1;
        w->nhcap = cap;
        memset(w->nh, 0xff, sizeof(int32_t) * cap);
        for (int64_t i = 1; i < w->nn; i++) {   /* node 0 (root) is never looked up */
            uint64_t m = (uint64_t)cap - 1, h = dec_hash(w->parent[i], w->label[i]) & m;
            while (w->nh[h] >= 0) h = (h + 1) & m;
            w->nh[h] = (int32_t)i;
        }
        return 0;   /* id (< nn) was re-inserted with the others */
    }
    uint64_t m = (uint64_t)w->nhcap - 1, h = dec_hash(w->parent[id], w->label[id]) & m;
    while (w->nh[h] >= 0) h = (h + 1) & m;
    w->nh[h] = id;
    return 0;
}

static inline int32_t node_find(const dec_ws *w, int32_t p, int32_t c) {
    if (w->linear) {
        for (int64_t i = 1; i < w->nn; i++)
            if (w->parent[i] == p && w->label[i] == c) return (int32_t)i;
        return -1;
    }
    if (!w->nhcap || !w->nkids[p]) return -1;
    uint64_t m = (uint64_t)w->nhcap - 1, h = dec_hash(p, c) & m;
    for (;;) {
        int32_t id = w->nh[h];
        if (id < 0) return -1;
        if (w->parent[id] == p && w->label[id] == c) return id;
        h = (h + 1) & m;
    }
}

static inline int64_t cand_new(dec_ws *w, int32_t node, int32_t p, int32_t c, int32_t t,
                               double lpc) {
    int64_t k = w->nc++;
    w->cnode[k] = node;
    w->cpar[k] = p;
    w->clab[k] = c;
    w->ctstep[k] = t;
    w->clpc[k] = lpc;
    w->cb[k] = -INFINITY;
    w->cnb[k] = -INFINITY;
    return k;
}

/* candidate slot of an existing node this frame */
static inline int64_t cand_of_node(dec_ws *w, int32_t id, int32_t stamp) {
    if (w->stamp[id] == stamp) return w->slot[id];
    w->stamp[id] = stamp;
    int64_t k = cand_new(w, id, w->parent[id], w->label[id], w->tstep[id], w->lpc[id]);
    w->slot[id] = (int32_t)k;
    return k;
}

/* candidate slot of the new prefix (p, c) this frame */
static inline int64_t cand_pending(dec_ws *w, int32_t p, int32_t c, int32_t t, double lpc,
                                   int32_t stamp) {
    if (w->linear) {
        for (int64_t k = 0; k < w->nc; k++)
            if (w->cnode[k] < 0 && w->cpar[k] == p && w->clab[k] == c) {
                if (w->clpc[k] < lpc) { w->clpc[k] = lpc; w->ctstep[k] = t; }
                return k;
            }
        return cand_new(w, -1, p, c, t, lpc);
    }
    uint64_t m = (uint64_t)w->phcap - 1, h = dec_hash(p, c) & m;
    for (;;) {
        if (w->phst[h] != stamp) {
            w->phst[h] = stamp;
            int64_t k = cand_new(w, -1, p, c, t, lpc);
            w->ph[h] = (int32_t)k;
            return k;
        }
        int64_t k = w->ph[h];
        if (w->cpar[k] == p && w->clab[k] == c) {
            if (w->clpc[k] < lpc) { w->clpc[k] = lpc; w->ctstep[k] = t; }
            return k;
        }
        h = (h + 1) & m;
    }
}

/* ordering of candidates: higher score first, then lower slot */
static inline int cand_better(const double *sc, int32_t a, int32_t b) {
    return sc[a] > sc[b] || (sc[a] == sc[b] && a < b);
}

static void cand_sort(const double *sc, int32_t *o, int64_t n) {   /* insertion / shell sort */
    static const int64_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
        int64_t gap = gaps[g];
        for (int64_t i = gap; i < n; i++) {
            int32_t v = o[i];
            int64_t j = i;
            while (j >= gap && cand_better(sc, v, o[j - gap])) { o[j] = o[j - gap]; j -= gap; }
            o[j] = v;
        }
    }
}

/* put the best k of o[0..n) first (any order) */
static void cand_select(const double *sc, int32_t *o, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        int64_t mid = lo + (hi - lo) / 2;
        /* median of three as pivot, moved to hi */
        if (cand_better(sc, o[mid], o[lo])) { int32_t t = o[mid]; o[mid] = o[lo]; o[lo] = t; }
        if (cand_better(sc, o[hi], o[lo])) { int32_t t = o[hi]; o[hi] = o[lo]; o[lo] = t; }
        if (cand_better(sc, o[mid], o[hi])) { int32_t t = o[mid]; o[mid] = o[hi]; o[hi] = t; }
        int32_t pv = o[hi];
        int64_t st = lo;
        for (int64_t i = lo; i < hi; i++)
            if (cand_better(sc, o[i], pv)) { int32_t t = o[i]; o[i] = o[st]; o[st] = t; st++; }
        o[hi] = o[st];
        o[st] = pv;
        if (st == k - 1 || st == k) return;   /* everything left of st beats everything right */
        if (st < k) lo = st + 1;
        else hi = st - 1;
    }
}

/* the k-th largest of v[0..n) (1 <= k <= n); reorders v */
static double kth_largest(double *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        double pv = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pv) i++;
            while (v[j] < pv) j--;
            if (i <= j) { double t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return v[want];
    }
    return v[want];
}

/* classes of one frame by probability (ties: lower class first), cut as ctcdecode does */
static int64_t frame_classes(dec_ws *w, const float *row, int64_t top_n, double cutoff_prob) {
    int64_t C = w->C;
    for (int64_t c = 0; c < C; c++) {   /* insertion into the sorted prefix of length <= top_n */
        float v = row[c];
        int64_t j = c < top_n ? c : top_n;
        if (j == top_n && !(v > w->clv[top_n - 1])) continue;
        if (j == top_n) j = top_n - 1;
        while (j > 0 && v > w->clv[j - 1]) {
            w->clv[j] = w->clv[j - 1];
            w->cls[j] = w->cls[j - 1];
            j--;
        }
        w->clv[j] = v;
        w->cls[j] = (int32_t)c;
    }
    int64_t n = C < top_n ? C : top_n;
    if (cutoff_prob < 1.0) {
        double cum = 0;
        int64_t k = 0;
        while (k < n) {
            cum += exp((double)w->clv[k]);
            k++;
            if (cum >= cutoff_prob) break;
        }
        n = k;
    }
    return n;
}

static int decode_one(dec_ws *w, int32_t *labels, float *scores, int32_t *starts, int32_t *lens,
                      const float *lp, int64_t Tn, int64_t T, int64_t blank, int64_t top_n,
                      double cutoff_prob) {
    int64_t B = w->B;
    /* reset: root only */
    w->nn = 1;
    w->parent[0] = -1;
    w->label[0] = -1;
    w->tstep[0] = 0;
    w->lpc[0] = 0;
    w->stamp[0] = -1;
    w->nkids[0] = 0;
    w->pb[0] = 0;
    w->pnb[0] = -INFINITY;
    w->score[0] = 0;
    if (w->nh) memset(w->nh, 0xff, sizeof(int32_t) * w->nhcap);
    if (w->phst) memset(w->phst, 0xff, sizeof(int32_t) * w->phcap);
    w->beam[0] = 0;
    w->nb = 1;
    for (int64_t t = 0; t < Tn && w->nb > 0; t++) {
        const float *row = lp + t * w->C;
        int32_t stamp = (int32_t)t;
        int64_t ncls = frame_classes(w, row, top_n, cutoff_prob);
        w->nc = 0;
        for (int64_t i = 0; i < w->nb; i++) cand_of_node(w, w->beam[i], stamp);
        /* blank first (it only feeds each prefix's own pb, so the order changes nothing);
         * with a full beam, every prefix then has a score of at least lc(blank) + its old
         * score, so B candidates are at least thr = lc(blank) + the lowest old score: a new
         * prefix (one contribution, from its parent) below thr can never survive */
        double lcb = -INFINITY;   /* blank's log-probability; the other classes up to the
                                   * first -inf are compacted in place (order kept): nk */
        int64_t nk = 0;
        for (int64_t j = 0; j < ncls && (double)w->clv[j] != -INFINITY; j++) {
            if (w->cls[j] == blank) {
                lcb = (double)w->clv[j];
            } else {
                w->cls[nk] = w->cls[j];
                w->clv[nk++] = w->clv[j];
            }
        }
        double thr = -INFINITY;
        if (lcb != -INFINITY) {
            for (int64_t i = 0; i < w->nb; i++) {
                int32_t p = w->beam[i];
                int64_t kp = w->slot[p];
                w->cb[kp] = lse2(w->cb[kp], lcb + w->score[p]);
            }
            if (w->nb == B) thr = lcb + w->score[w->beam[w->nb - 1]];
        }
        /* threshold pass: every beam prefix (score >= its pb so far) and every new prefix
         * (score = its one extension) is a distinct candidate, so the B-th largest of those
         * values bounds the B-th best final score from below */
        int64_t nv = 0, nq = 0;
        for (int64_t i = 0; i < w->nb; i++) w->vals[nv++] = w->cb[w->slot[w->beam[i]]];
        for (int64_t j = 0; j < nk; j++) {
            int32_t c = w->cls[j];
            double lc = (double)w->clv[j];
            for (int64_t i = 0; i < w->nb; i++) {
                int32_t p = w->beam[i];
                int32_t q = node_find(w, p, c);
                w->qs[nq++] = q;
                if (q < 0) w->vals[nv++] = lc + (c == w->label[p] ? w->pb[p] : w->score[p]);
            }
        }
        if (nv > B) {
            double v = kth_largest(w->vals, nv, B);
            if (v > thr) thr = v;
        }
        nq = 0;
        for (int64_t j = 0; j < nk; j++) {
            int32_t c = w->cls[j];
            double lc = (double)w->clv[j];
            for (int64_t i = 0; i < w->nb; i++) {
                int32_t p = w->beam[i];
                int64_t kp = w->slot[p];
                double ext;
                if (c == w->label[p]) {
                    w->cnb[kp] = lse2(w->cnb[kp], lc + w->pnb[p]);
                    ext = lc + w->pb[p];
                } else {
                    ext = lc + w->score[p];
                }
                int32_t q = w->qs[nq++];
                int64_t kq;
                if (q >= 0) {
                    kq = cand_of_node(w, q, stamp);
                    if (w->lpc[q] < ext) {
                        w->lpc[q] = ext;
                        w->tstep[q] = (int32_t)t;
                    }
                } else {
                    if (ext < thr) continue;
                    kq = cand_pending(w, p, c, (int32_t)t, ext, stamp);
                }
                w->cnb[kq] = lse2(w->cnb[kq], ext);
            }
        }
        /* survivors: candidates with a finite score, best B */
        int64_t m = 0;
        for (int64_t k = 0; k < w->nc; k++) {
            w->cscore[k] = lse2(w->cb[k], w->cnb[k]);
            if (w->cscore[k] > -INFINITY) w->order[m++] = (int32_t)k;
        }
        if (m > B) {
            cand_select(w->cscore, w->order, m, B);
            m = B;
        }
        cand_sort(w->cscore, w->order, m);
        if (ws_nodes_reserve(w, w->nn + m)) return -1;
        for (int64_t i = 0; i < m; i++) {
            int64_t k = w->order[i];
            int32_t id = w->cnode[k];
            if (id < 0) {   /* a new prefix survives: make it a node */
                id = (int32_t)w->nn++;
                w->parent[id] = w->cpar[k];
                w->label[id] = w->clab[k];
                w->tstep[id] = w->ctstep[k];
                w->lpc[id] = w->clpc[k];
                w->stamp[id] = stamp;
                w->slot[id] = (int32_t)k;
                w->nkids[id] = 0;
                w->nkids[w->cpar[k]]++;
                if (!w->linear && nh_insert(w, id)) return -1;
            }
            w->pb[id] = w->cb[k];
            w->pnb[id] = w->cnb[k];
            w->score[id] = w->cscore[k];
            w->nbeam[i] = id;
        }
        int32_t *tmp = w->beam;
        w->beam = w->nbeam;
        w->nbeam = tmp;
        w->nb = m;
    }
    /* outputs, best first */
    for (int64_t i = 0; i < B; i++) {
        int32_t *lab = labels + i * T, *st = starts + i * T;
        if (i >= w->nb) {
            scores[i] = INFINITY;
            lens[i] = 0;
            continue;
        }
        int32_t id = w->beam[i];
        int64_t len = 0;
        for (int32_t q = id; q > 0; q = w->parent[q]) len++;
        int64_t j = len;
        for (int32_t q = id; q > 0; q = w->parent[q]) {
            j--;
            lab[j] = w->label[q];
            st[j] = w->tstep[q];
        }
        lens[i] = (int32_t)len;
        scores[i] = (float)(-w->score[id]) + 0.0f;   /* no -0 */
    }
    return 0;
}

static int beam_search(int32_t *labels, float *scores, int32_t *starts, int32_t *lens,
                       const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C,
                       int64_t B, int64_t blank, int64_t top_n, double cutoff_prob, int nt,
                       int linear) {
    int fail = 0;
    int64_t maxcls = top_n < C ? top_n : C;
    if (nt > N) nt = (int)(N > 0 ? N : 1);
    if (nt < 1) nt = 1;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(|: fail)
    {
        dec_ws w;
        int ok = ws_init(&w, C, B, maxcls, linear) == 0;
        if (!ok) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t n = 0; n < N; n++) {
            if (!ok) continue;
            if (decode_one(&w, labels + n * B * T, scores + n * B, starts + n * B * T,
                           lens + n * B, lp + n * T * C, sl[n], T, blank, top_n, cutoff_prob))
                fail = 1;
        }
        ws_free(&w);
    }
    return fail ? -1 : 0;
}

int ce_ctc_beam_search(int32_t *labels, float *scores, int32_t *starts, int32_t *lens,
                       const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C,
                       int64_t B, int64_t blank, int64_t cutoff_top_n, double cutoff_prob,
                       int nthreads) {
    int nt = nthreads > 0 ? nthreads : ce_get_num_threads();
#ifndef _OPENMP
    nt = 1;
#endif
    return beam_search(labels, scores, starts, lens, lp, sl, N, T, C, B, blank, cutoff_top_n,
                       cutoff_prob, nt, 0);
}

int ce_ctc_beam_search_ref(int32_t *labels, float *scores, int32_t *starts, int32_t *lens,
                           const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C,
                           int64_t B, int64_t blank, int64_t cutoff_top_n, double cutoff_prob) {
    return beam_search(labels, scores, starts, lens, lp, sl, N, T, C, B, blank, cutoff_top_n,
                       cutoff_prob, 1, 1);
}
