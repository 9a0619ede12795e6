// sample_topc.inc.glsl: a workgroup keeps the best CAND (value, id) pairs of a stream in shared memory.
// Rounds of WG_SIZE elements are filtered against the current CAND-th best; survivors go to a staging
// half, and when it may overflow it is bitonic-sorted worst-first, half-cleaned against the kept half
// and bitonic-merged, so tv/ti[0, CAND) stay sorted best-first. The includer defines
// TOPC_LOAD(j, v, id) and includes sample_common.inc.glsl first.

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

// Streams elements [begin, end) through the filter; on return tv/ti[0, CAND) hold the best CAND,
// best-first, padded with (-inf, S_INVALID).
void topc_run(uint begin, uint end)
{
    uint lid = gl_LocalInvocationID.x;
    const uint C = uint(CAND);
    topc_init();
    for (uint base = begin; base < end; base += uint(WG_SIZE)) {
        uint j = base + lid;
        if (j < end) {
            float v;
            uint id;
            TOPC_LOAD(j, v, id);
            if (s_before(v, id, tv[C - 1u], ti[C - 1u])) {
                uint slot = atomicAdd(t_n, 1u);
                tv[C + slot] = v;
                ti[C + slot] = id;
            }
        }
        WG_BARRIER();
        uint n = t_n;
        WG_BARRIER(); // every invocation has read n before anyone changes it
        if (n > C - uint(WG_SIZE))
            topc_merge(n);
    }
    uint n = t_n;
    WG_BARRIER();
    if (n > 0u)
        topc_merge(n);
}
