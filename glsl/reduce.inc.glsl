// reduce.inc.glsl: wg_sum(v), the sum of v over the workgroup, for kernels of one-dimensional workgroups of
// WG_SIZE invocations. subgroupAdd and one shared-memory round where subgroups exist (a 256-wide tree
// costs 8 barriers, which dominated the norms on the H100), a shared-memory tree otherwise. Every
// invocation must call it (it has barriers); it may be called repeatedly.

shared float red[WG_SIZE];

// WG_SUBGROUPS: the workgroup is whole subgroups with arithmetic (nested: the preprocessor evaluates
// every operand, and SUBGROUP_SIZE exists only with HAS_SUBGROUP)
#ifndef WG_SUBGROUPS
#ifdef HAS_SUBGROUP
#if (WG_SIZE % SUBGROUP_SIZE) == 0
#define WG_SUBGROUPS 1
#endif
#endif
#ifndef WG_SUBGROUPS
#define WG_SUBGROUPS 0
#endif
#endif
float wg_sum(float v)
{
    uint lid = gl_LocalInvocationID.x;
#if WG_SUBGROUPS
    float s = subgroupAdd(v);
    if (subgroupElect())
        red[lid / uint(SUBGROUP_SIZE)] = s;
    WG_BARRIER();
    float r = 0.0;
    for (uint i = 0u; i < uint(WG_SIZE / SUBGROUP_SIZE); i++)
        r += red[i];
    WG_BARRIER();
    return r;
#else
    red[lid] = v;
    WG_BARRIER();
    for (uint s = uint(WG_SIZE) / 2u; s > 0u; s >>= 1) {
        if (lid < s)
            red[lid] += red[lid + s];
        WG_BARRIER();
    }
    float r = red[0];
    WG_BARRIER();
    return r;
#endif
}
