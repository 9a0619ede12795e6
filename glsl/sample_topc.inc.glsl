// sample_topc.inc.glsl: a workgroup keeps the best CAND (value, id) pairs of a range in shared memory:
// tv/ti[0, CAND) hold the kept pairs best-first, tv/ti[CAND, 2 CAND) a staging half that is
// bitonic-sorted worst-first, half-cleaned against the kept half and bitonic-merged into it. The
// includer defines TOPC_LOAD(j, v, id) and includes sample_common.inc.glsl first.

#if (CAND & (CAND - 1)) != 0 || CAND < WG_SIZE
#error CAND must be a power of two and at least WG_SIZE
#endif

shared float tv[2 * CAND];
shared uint ti[2 * CAND];
shared uint t_n;

// Leaves the better of slots a and b in a.
void topc_order(uint a, uint b)
{
    float va = tv[a], vb = tv[b];
    uint ia = ti[a], ib = ti[b];
    if (s_before(vb, ib, va, ia)) {
        tv[a] = vb;
        ti[a] = ib;
        tv[b] = va;
        ti[b] = ia;
    }
}

void topc_init()
{
    uint lid = gl_LocalInvocationID.x;
    for (uint j = lid; j < 2u * uint(CAND); j += uint(WG_SIZE)) {
        tv[j] = S_NEG_INF;
        ti[j] = S_INVALID;
    }
    if (lid == 0u)
        t_n = 0u;
    WG_BARRIER();
}

void topc_merge(uint n)
{
    uint lid = gl_LocalInvocationID.x;
    const uint C = uint(CAND);
    for (uint j = n + lid; j < C; j += uint(WG_SIZE)) {
        tv[C + j] = S_NEG_INF;
        ti[C + j] = S_INVALID;
    }
    WG_BARRIER();
    // Sort staging worst-first.
    for (uint k = 2u; k <= C; k <<= 1) {
        for (uint j = k >> 1; j > 0u; j >>= 1) {
            for (uint t = lid; t < C / 2u; t += uint(WG_SIZE)) {
                uint i = 2u * j * (t / j) + (t % j);
                if ((i & k) == 0u)
                    topc_order(C + i + j, C + i);
                else
                    topc_order(C + i, C + i + j);
            }
            WG_BARRIER();
        }
    }
    // Kept (best-first) | staging (worst-first) is bitonic: the half-cleaner leaves the best CAND in the
    // first half, itself bitonic, and a bitonic merge sorts it.
    for (uint t = lid; t < C; t += uint(WG_SIZE))
        topc_order(t, C + t);
    WG_BARRIER();
    for (uint j = C >> 1; j > 0u; j >>= 1) {
        for (uint t = lid; t < C / 2u; t += uint(WG_SIZE)) {
            uint i = 2u * j * (t / j) + (t % j);
            topc_order(i, i + j);
        }
        WG_BARRIER();
    }
    if (lid == 0u)
        t_n = 0u;
    WG_BARRIER();
}

// Keeps the best CAND of elements [begin, end) in tv/ti[0, CAND), best-first, padded with
// (-inf, S_INVALID). Invocation `lid` owns the strided elements begin + lid + k * WG_SIZE. Phase 1 (no
// barriers): each keeps its own best TOPC_R = CAND / WG_SIZE in registers; their union, CAND elements,
// is merged in one go, so its worst is already a lower bound of the final threshold. Phase 2: each
// invocation streams its elements again and stages only those that beat the current threshold and
// were not in its own list; when the staging half fills, the invocation stops where it is and the
// round ends with a merge. Typical inputs need one or two rounds; any input is exact.
#define TOPC_R (CAND / WG_SIZE)
shared uint t_busy;

void topc_run(uint begin, uint end)
{
    uint lid = gl_LocalInvocationID.x;
    const uint C = uint(CAND), W = uint(WG_SIZE);
    float pv[TOPC_R];
    uint pi[TOPC_R];
    for (int r = 0; r < TOPC_R; r++) {
        pv[r] = S_NEG_INF;
        pi[r] = S_INVALID;
    }
    for (uint j = begin + lid; j < end; j += W) {
        float v;
        uint id;
        TOPC_LOAD(j, v, id);
        if (s_before(v, id, pv[TOPC_R - 1], pi[TOPC_R - 1])) {
            int r = TOPC_R - 1;
            for (; r > 0 && s_before(v, id, pv[r - 1], pi[r - 1]); r--) {
                pv[r] = pv[r - 1];
                pi[r] = pi[r - 1];
            }
            pv[r] = v;
            pi[r] = id;
        }
    }
    topc_init();
    for (int r = 0; r < TOPC_R; r++) {
        tv[C + lid * uint(TOPC_R) + uint(r)] = pv[r];
        ti[C + lid * uint(TOPC_R) + uint(r)] = pi[r];
    }
    if (lid == 0u)
        t_busy = 0u;
    topc_merge(C);
    // Elements not after my own worst were in my list, so they are merged already.
    float wv = pv[TOPC_R - 1];
    uint wi = pi[TOPC_R - 1];
    uint cur = begin + lid;
    for (;;) {
        float thr_v = tv[C - 1u];
        uint thr_i = ti[C - 1u];
        bool done = true;
        for (; cur < end; cur += W) {
            float v;
            uint id;
            TOPC_LOAD(cur, v, id);
            if (!s_before(wv, wi, v, id) || !s_before(v, id, thr_v, thr_i))
                continue;
            uint slot = atomicAdd(t_n, 1u);
            if (slot >= C) {
                done = false; // staging full: retry this element after the merge
                break;
            }
            tv[C + slot] = v;
            ti[C + slot] = id;
        }
        if (!done)
            atomicAdd(t_busy, 1u);
        WG_BARRIER();
        uint n = min(t_n, C), busy = t_busy;
        WG_BARRIER(); // every invocation has read t_n and t_busy
        if (lid == 0u)
            t_busy = 0u;
        if (n > 0u)
            topc_merge(n);
        else {
            WG_BARRIER();
        }
        if (busy == 0u)
            break;
    }
}
