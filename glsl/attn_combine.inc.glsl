// attn_combine.inc.glsl: combine_partials(t, h), the merge of split attention's NSPLIT partial results
// (max, sum, unnormalized acc[HD]) of head h of token t: out = sum_s exp(m_s - M) acc_s /
// sum_s exp(m_s - M) l_s. Reads P[] and writes O[], which the including kernel declares (attn_combine.glsl
// as its own bindings; attention.glsl's fused entry from its last workgroup). Invocations split the dims.
// What this costs is latency (a few KB from the L2, P being coherent in the fused kernel), so the NSPLIT
// maxima and sums are loaded once into registers, all before the first is used, and turned into weights
// there; the accumulator loop then issues its NSPLIT loads back to back. (The loop that reloaded P[b] for
// the sums and again for every dim: H200 bench tg128, 1B Q4_K_M 792 / 792 -> 808 / 799 tok/s, Qwen3-0.6B
// 663 -> 673 / 669; a variant that left the loops early at a run-time split count made the loads wait on
// one another: 1B tg1024 723 -> 687.)

void combine_partials(uint t, uint h)
{
    uint pb = (t * uint(NH) + h) * uint(NSPLIT) * uint(HD + 2);
    float wm[NSPLIT], wl[NSPLIT];
    float M = -3.0e38;
    for (uint s = 0u; s < uint(NSPLIT); s++) {
        uint b = pb + s * uint(HD + 2);
        wm[s] = P[b];
        wl[s] = P[b + 1u];
    }
    for (uint s = 0u; s < uint(NSPLIT); s++)
        M = max(M, wm[s]);
    float L = 0.0;
    for (uint s = 0u; s < uint(NSPLIT); s++) {
        wm[s] = exp(wm[s] - M); // from here the weight of split s
        L += wl[s] * wm[s];
    }
    float inv = L > 0.0 ? 1.0 / L : 0.0;
    for (uint d = gl_LocalInvocationID.x; d < uint(HD); d += uint(WG_SIZE)) {
        float a = 0.0;
        for (uint s = 0u; s < uint(NSPLIT); s++)
            a += P[pb + s * uint(HD + 2) + 2u + d] * wm[s];
        O[(t * uint(NH) + h) * uint(HD) + d] = a * inv;
    }
}
