// wdecode.inc.glsl: reads weights in their GPU format, a chunk of WCH consecutive elements of a row at a
// time. Weights are bound as uvec4 arrays: binding 1 (W4) and, for the fused gate/up kernel, binding 4
// (U4); `sel` (a constant at every call site) picks one. Quantized blocks are in GGUF byte layout and
// read with byte arithmetic (the file's bytes, uploaded as they are), except the split Q8_0 / Q6_K layouts
// at the end, which the executor builds at upload for one-row GEMVs: Q4_K (144 bytes) and Q5_K (176) blocks
// are 16-byte aligned and read as uvec4; Q4_1 (20) and Q5_1 (24) are 4-byte aligned and read as words;
// Q8_0 (34), Q6_K (210), Q4_0 (18) and Q5_0 (22) are read as unaligned 32-bit words. Each decoder
// follows the CPU reference of model/quant.c (ggml's dequantize_row_* formulas) element for element.
// Needs WTYPE (a DT_* code) and WROWBYTES (bytes per row); the includer may define WSEL2 for U4, and IMG
// to read both through image buffers instead (llvmpipe's fast load path).

#ifndef WTYPE
#define WTYPE DT_F32
#endif
#ifndef WROWBYTES
#define WROWBYTES 256
#endif

#ifndef IMG
#define IMG 0 // 1: the weights are read through image buffers (the registry's imageUnit 0 and 1), not SSBOs
#endif
#if IMG
// The includer enables GL_EXT_texture_buffer. Same words as W4 / U4: texel i is uvec4 i of the binding.
layout(rgba32ui, binding = 0) readonly uniform highp uimageBuffer WI;
#ifdef WSEL2
layout(rgba32ui, binding = 1) readonly uniform highp uimageBuffer UI;
uvec4 wvec(uint sel, uint i) { return sel == 0u ? imageLoad(WI, int(i)) : imageLoad(UI, int(i)); }
#else
uvec4 wvec(uint sel, uint i) { return imageLoad(WI, int(i)); }
#endif
#else
layout(std430, binding = 1) readonly buffer Wb { uvec4 W4[]; };
#ifdef WSEL2
layout(std430, binding = 4) readonly buffer Ub { uvec4 U4[]; };
uvec4 wvec(uint sel, uint i) { return sel == 0u ? W4[i] : U4[i]; }
#else
uvec4 wvec(uint sel, uint i) { return W4[i]; }
#endif
#endif

uint wword(uint sel, uint wi) { return wvec(sel, wi >> 2)[wi & 3u]; }

// 4 bytes starting at any byte offset
uint wword_at(uint sel, uint byteoff)
{
    uint wi = byteoff >> 2, sh = (byteoff & 3u) * 8u;
    uint lo = wword(sel, wi);
    if (sh == 0u)
        return lo;
    return (lo >> sh) | (wword(sel, wi + 1u) << (32u - sh));
}

uint wbyte(uint sel, uint byteoff) { return (wword(sel, byteoff >> 2) >> ((byteoff & 3u) * 8u)) & 0xffu; }

float whalf(uint sel, uint byteoff) // an f16 at an even byte offset
{
    uint w = wword(sel, byteoff >> 2);
    return unpackHalf2x16((byteoff & 2u) != 0u ? (w >> 16) : (w & 0xffffu)).x;
}

int sbyte(uint w, uint i) { return int(w << (24u - 8u * i)) >> 24; } // signed byte i of a word

// The four bytes of w as floats. Quantized decoders mask or assemble four quants a word in place (one a
// byte: (w >> 4) & 0x0F0F0F0F is four high nibbles) and convert them here, rather than shifting each quant
// down on its own: H200, tools/chain-bench.c, 8B Q6_K down 4096x14336 35.2 -> 27.3 us, Q6_K LM head
// 158 -> 147 us, Q4_K gate/up with XSH 47.3 -> 43.5 us (the conversion of a byte field can take its byte
// straight from the word).
vec4 ubytes(uint w) { return vec4(float(w & 255u), float((w >> 8) & 255u), float((w >> 16) & 255u), float(w >> 24)); }
// the four signed bytes of w as floats: b ^ 0x80 is b + 128 in two's complement
vec4 sbytes(uint w) { return ubytes(w ^ 0x80808080u) - 128.0; }
// four Q6_K quants minus 32: the nibbles of ql word lw at shift nsh, the 2-bit highs of qh word hw at hsh
vec4 q6_quads(uint lw, uint hw, uint nsh, uint hsh)
{
    return ubytes(((lw >> nsh) & 0x0F0F0F0Fu) | (((hw >> hsh) & 0x03030303u) << 4)) - 32.0;
}

// The 6-bit scale and min of sub-block j (0..7) from the 12 scale bytes in h.y, h.z, h.w, shared by Q4_K
// and Q5_K (GGUF get_scale_min_k4).
// Selects on the byte j % 4 of each word rather than an array indexed by j: an array indexed at run time
// can live in local memory (it did in the Q6_K split decode of matmul.glsl on the H200).
void k_scale_min(uvec4 h, uint j, out uint sc_v, out uint m_v)
{
    uint sh = 8u * (j & 3u);
    uint by = (h.y >> sh) & 255u, bz = (h.z >> sh) & 255u, bw = (h.w >> sh) & 255u;
    bool lo = j < 4u; // sub-blocks 0-3: the low 6 bits of bytes j (scale) and j + 4 (min)
    sc_v = lo ? by & 63u : (bw & 15u) | ((by >> 6) << 4);
    m_v = lo ? bz & 63u : (bw >> 4) | ((bz >> 6) << 4);
}

#if WTYPE == DT_F32
#define WCH 4
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uvec4 v = wvec(sel, (rowbyte >> 4) + c);
    w[0] = uintBitsToFloat(v.x); w[1] = uintBitsToFloat(v.y); w[2] = uintBitsToFloat(v.z); w[3] = uintBitsToFloat(v.w);
}
#elif WTYPE == DT_F16
#define WCH 8
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uvec4 v = wvec(sel, (rowbyte >> 4) + c);
    vec2 a = unpackHalf2x16(v.x), b = unpackHalf2x16(v.y), d = unpackHalf2x16(v.z), e = unpackHalf2x16(v.w);
    w[0] = a.x; w[1] = a.y; w[2] = b.x; w[3] = b.y; w[4] = d.x; w[5] = d.y; w[6] = e.x; w[7] = e.y;
}
#elif WTYPE == DT_BF16
#define WCH 8
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uvec4 v = wvec(sel, (rowbyte >> 4) + c);
    for (int j = 0; j < 4; j++) {
        w[2 * j] = uintBitsToFloat(v[j] << 16);
        w[2 * j + 1] = uintBitsToFloat(v[j] & 0xffff0000u);
    }
}
#elif WTYPE == DT_Q8_0
#define WCH 32
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = rowbyte + c * 34u;
    float d = whalf(sel, b);
    for (uint j = 0u; j < 8u; j++) {
        vec4 q = sbytes(wword_at(sel, b + 2u + 4u * j));
        for (uint i = 0u; i < 4u; i++)
            w[4u * j + i] = d * q[i];
    }
}
#elif WTYPE == DT_Q4_0
#define WCH 32
// f16 d | 16 bytes: element j in the low nibble of byte j, element j + 16 in its high nibble; d * (q - 8)
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = rowbyte + c * 18u;
    float d = whalf(sel, b);
    for (uint j = 0u; j < 4u; j++) {
        uint q = wword_at(sel, b + 2u + 4u * j);
        for (uint i = 0u; i < 4u; i++) {
            uint by = (q >> (8u * i)) & 0xffu;
            w[4u * j + i] = d * float(int(by & 0xfu) - 8);
            w[4u * j + i + 16u] = d * float(int(by >> 4) - 8);
        }
    }
}
#elif WTYPE == DT_Q4_1
#define WCH 32
// f16 d | f16 m | 16 nibble bytes (as Q4_0); d * q + m. Blocks are 20 bytes, so every word is aligned.
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = (rowbyte + c * 20u) >> 2;
    vec2 dm = unpackHalf2x16(wword(sel, b));
    for (uint j = 0u; j < 4u; j++) {
        uint q = wword(sel, b + 1u + j);
        for (uint i = 0u; i < 4u; i++) {
            uint by = (q >> (8u * i)) & 0xffu;
            w[4u * j + i] = dm.x * float(by & 0xfu) + dm.y;
            w[4u * j + i + 16u] = dm.x * float(by >> 4) + dm.y;
        }
    }
}
#elif WTYPE == DT_Q5_0
#define WCH 32
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = rowbyte + c * 22u;
    float d = whalf(sel, b);
    uint qh = wword_at(sel, b + 2u);
    for (uint j = 0u; j < 4u; j++) {
        uint q = wword_at(sel, b + 6u + 4u * j);
        for (uint i = 0u; i < 4u; i++) {
            uint l = 4u * j + i;
            uint by = (q >> (8u * i)) & 0xffu;
            uint lo = (by & 0xfu) | (((qh >> l) & 1u) << 4);
            uint hi = (by >> 4) | (((qh >> (l + 16u)) & 1u) << 4);
            w[l] = d * float(int(lo) - 16);
            w[l + 16u] = d * float(int(hi) - 16);
        }
    }
}
#elif WTYPE == DT_Q5_1
#define WCH 32
// f16 d | f16 m | u32 qh (bit j: 5th bit of element j) | 16 nibble bytes; d * q + m. 24-byte blocks: aligned.
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = (rowbyte + c * 24u) >> 2;
    vec2 dm = unpackHalf2x16(wword(sel, b));
    uint qh = wword(sel, b + 1u);
    for (uint j = 0u; j < 4u; j++) {
        uint q = wword(sel, b + 2u + j);
        for (uint i = 0u; i < 4u; i++) {
            uint l = 4u * j + i;
            uint by = (q >> (8u * i)) & 0xffu;
            uint lo = (by & 0xfu) | (((qh >> l) & 1u) << 4);
            uint hi = (by >> 4) | (((qh >> (l + 16u)) & 1u) << 4);
            w[l] = dm.x * float(lo) + dm.y;
            w[l + 16u] = dm.x * float(hi) + dm.y;
        }
    }
}
#elif WTYPE == DT_Q4_K
#define WCH 32
// chunk c = sub-block (c % 8) of super-block (c / 8); GGUF dequantize_row_q4_K order
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint blk = (rowbyte >> 4) + (c >> 3) * 9u; // 144 bytes = 9 uvec4
    uint sb = c & 7u;
    uvec4 h = wvec(sel, blk);
    vec2 dm = unpackHalf2x16(h.x);
    uint sc_v, m_v;
    k_scale_min(h, sb, sc_v, m_v);
    float d1 = dm.x * float(sc_v), m1 = dm.y * float(m_v);
    uint qv = blk + 1u + (sb >> 1) * 2u; // 32 quant bytes of the pair (sb/2)
    uint shift = (sb & 1u) * 4u;
    for (uint v = 0u; v < 2u; v++) {
        uvec4 q = wvec(sel, qv + v);
        for (uint k = 0u; k < 4u; k++) {
            vec4 f = ubytes((q[k] >> shift) & 0x0F0F0F0Fu);
            for (uint i = 0u; i < 4u; i++)
                w[v * 16u + k * 4u + i] = d1 * f[i] - m1;
        }
    }
}
#elif WTYPE == DT_Q5_K
#define WCH 32
// chunk c = sub-block (c % 8) of super-block (c / 8). 176 bytes = 11 uvec4: f16 d, f16 dmin, 12 scale
// bytes (as Q4_K) | 32 qh bytes | 128 ql bytes. Sub-block sb takes its low 4 bits from the low (even sb)
// or high (odd sb) nibbles of ql[32 * (sb / 2) + l] and its 5th bit from bit sb of qh[l].
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint blk = (rowbyte >> 4) + (c >> 3) * 11u;
    uint sb = c & 7u;
    uvec4 h = wvec(sel, blk);
    vec2 dm = unpackHalf2x16(h.x);
    uint sc_v, m_v;
    k_scale_min(h, sb, sc_v, m_v);
    float d1 = dm.x * float(sc_v), m1 = dm.y * float(m_v);
    uint qv = blk + 3u + (sb >> 1) * 2u; // the 32 ql bytes of the pair (sb / 2)
    uint shift = (sb & 1u) * 4u;
    for (uint v = 0u; v < 2u; v++) {
        uvec4 q = wvec(sel, qv + v), hb = wvec(sel, blk + 1u + v); // hb: qh bytes 16v .. 16v + 15
        for (uint k = 0u; k < 4u; k++)
            for (uint i = 0u; i < 4u; i++) {
                uint lo = (q[k] >> (8u * i + shift)) & 0xfu;
                uint hi = (hb[k] >> (8u * i + sb)) & 1u;
                w[v * 16u + k * 4u + i] = d1 * float(lo | (hi << 4)) - m1;
            }
    }
}
#elif WTYPE == DT_Q6_K
#define WCH 32
// chunk c: quarter (c % 4) of half ((c / 4) % 2) of super-block c / 8; GGUF dequantize_row_q6_K order
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = rowbyte + (c >> 3) * 210u;
    uint hh = (c >> 2) & 1u, qq = c & 3u;
    float d = whalf(sel, b + 208u);
    uint ql0 = b + hh * 64u + (qq & 1u) * 32u;
    uint qh0 = b + 128u + hh * 32u;
    uint sc0 = b + 192u + hh * 8u + qq * 2u;
    uint scw = wword_at(sel, sc0);
    float s0 = d * float(sbyte(scw, 0u)), s1 = d * float(sbyte(scw, 1u));
    uint nsh = (qq >> 1) * 4u, hsh = qq * 2u;
    for (uint j = 0u; j < 8u; j++) {
        uint lw = wword_at(sel, ql0 + 4u * j), hw = wword_at(sel, qh0 + 4u * j);
        vec4 f = q6_quads(lw, hw, nsh, hsh);
        for (uint i = 0u; i < 4u; i++)
            w[4u * j + i] = (j < 4u ? s0 : s1) * f[i];
    }
}
#elif WTYPE == DT_Q8_0_SPLIT
#define WCH 32
// Split layout (GPU only, src/pipe/split_blocks.c): groups of 8 Q8_0 blocks (256 elements, 272 bytes = 17
// uvec4): the 8 f16 scales (16 bytes), then the 8 x 32 int8 quants. Same bits per weight as GGUF's 34-byte
// blocks; every load is an aligned uvec4. A row's last group may hold fewer blocks (its scale slot stays
// 16 bytes): the group addressing below is the same.
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint g = (rowbyte >> 4) + (c >> 3) * 17u, j = c & 7u;
    float d = unpackHalf2x16(wvec(sel, g)[j >> 1])[j & 1u];
    uvec4 q0 = wvec(sel, g + 1u + 2u * j), q1 = wvec(sel, g + 2u + 2u * j);
    for (uint k = 0u; k < 4u; k++) {
        vec4 a = sbytes(q0[k]), b = sbytes(q1[k]);
        for (uint i = 0u; i < 4u; i++) {
            w[4u * k + i] = d * a[i];
            w[16u + 4u * k + i] = d * b[i];
        }
    }
}
#elif WTYPE == DT_Q6_K_SPLIT
#define WCH 32
// Split layout (GPU only): groups of 8 Q6_K super-blocks (2048 elements, 1680 bytes = 105 uvec4): the 8
// f16 d (16 bytes), then 8 x 208 bytes (ql 128, qh 64, scales 16: GGUF's block without its trailing d, 13
// uvec4). Same bits per weight as GGUF; every load is an aligned uvec4. Chunk order as DT_Q6_K. A row's
// last group may hold fewer super-blocks, as for Q8_0.
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint s = c >> 3, g = (rowbyte >> 4) + (s >> 3) * 105u, sb = s & 7u;
    float d = unpackHalf2x16(wvec(sel, g)[sb >> 1])[sb & 1u];
    uint b = g + 1u + sb * 13u;
    uint hh = (c >> 2) & 1u, qq = c & 3u;
    uint ql0 = b + hh * 4u + (qq & 1u) * 2u, qh0 = b + 8u + hh * 2u;
    uint so = hh * 8u + qq * 2u; // byte offset of the two int8 scales within the 16 scale bytes
    uint scw = wvec(sel, b + 12u)[so >> 2] >> (8u * (so & 3u));
    float s0 = d * float(sbyte(scw, 0u)), s1 = d * float(sbyte(scw, 1u));
    uint nsh = (qq >> 1) * 4u, hsh = qq * 2u;
    uvec4 l0 = wvec(sel, ql0), l1 = wvec(sel, ql0 + 1u), h0 = wvec(sel, qh0), h1 = wvec(sel, qh0 + 1u);
    for (uint j = 0u; j < 8u; j++) {
        uint lw = j < 4u ? l0[j] : l1[j - 4u], hw = j < 4u ? h0[j] : h1[j - 4u];
        vec4 f = q6_quads(lw, hw, nsh, hsh);
        for (uint i = 0u; i < 4u; i++)
            w[4u * j + i] = (j < 4u ? s0 : s1) * f[i];
    }
}
#elif WTYPE == DT_MXFP4
#define WCH 32
// GGUF MXFP4 block (17 bytes / 32): E8M0 scale byte, then 16 bytes, element j in the low nibble of byte j
// and element j + 16 in its high nibble. E2M1 codes doubled as ggml stores them ({0,1,2,3,4,6,8,12} and
// negatives), scale 2^(e - 128) (ggml's GGML_E8M0_TO_FP32_HALF): value = code * 2^(e - 128), by ldexp in
// two halves of the exponent, each within [-64, 64], so no step goes through a subnormal power of two
// (e < 2 gives one, which GPUs may flush to zero): with one ldexp, 40 of kp_mxfp4_dequant's 576 values
// differed from the CPU reference on an H200.
const float MXFP4_KV[16] = float[16](0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0);
void wchunk(uint sel, uint rowbyte, uint c, out float w[WCH])
{
    uint b = rowbyte + c * 17u;
    int ex = int(wbyte(sel, b)) - 128;
    int ex1 = ex / 2, ex2 = ex - ex1; // each in [-64, 64]: 2^ex1 and 2^ex2 are normal floats
    for (uint j = 0u; j < 4u; j++) {
        uint q = wword_at(sel, b + 1u + 4u * j);
        for (uint i = 0u; i < 4u; i++) {
            uint by = (q >> (8u * i)) & 0xffu;
            w[4u * j + i] = ldexp(ldexp(MXFP4_KV[by & 0xfu], ex1), ex2);
            w[4u * j + i + 16u] = ldexp(ldexp(MXFP4_KV[by >> 4], ex1), ex2);
        }
    }
}
#else
#error unsupported WTYPE
#endif
