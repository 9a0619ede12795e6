// attn_combine.inc.glsl: combine_partials(t, h), the merge of split attention's NSPLIT partial results
// (max, sum, unnormalized acc[HD]) of head h of token t: out = sum_s exp(m_s - M) acc_s /
// sum_s exp(m_s - M) l_s. Reads P[] and writes O[], which the including kernel declares (attn_combine.glsl
// as its own bindings; attention.glsl's fused entry from its last workgroup). Invocations split the dims.

void combine_partials(uint t, uint h)
{
    uint pb = (t * uint(NH) + h) * uint(NSPLIT) * uint(HD + 2);
    float M = -3.0e38;
    for (uint s = 0u; s < uint(NSPLIT); s++)
        M = max(M, P[pb + s * uint(HD + 2)]);
    float L = 0.0;
    for (uint s = 0u; s < uint(NSPLIT); s++) {
        uint b = pb + s * uint(HD + 2);
        L += P[b + 1u] * exp(P[b] - M);
    }
    float inv = L > 0.0 ? 1.0 / L : 0.0;
    for (uint d = gl_LocalInvocationID.x; d < uint(HD); d += uint(WG_SIZE)) {
        float a = 0.0;
        for (uint s = 0u; s < uint(NSPLIT); s++) {
            uint b = pb + s * uint(HD + 2);
            a += P[b + 2u + d] * exp(P[b] - M);
        }
        O[(t * uint(NH) + h) * uint(HD) + d] = a * inv;
    }
}
