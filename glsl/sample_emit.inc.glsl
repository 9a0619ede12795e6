// sample_emit.inc.glsl: the last step of every sampled token, run by one invocation: write the id to
// the token slot (the next step's input), append it to the history and raise the stop flag when it is
// one of the u_eos ids. After a stop nothing more is appended, so the history ends at the first stop
// and the CPU trims a multi-step group there. Needs binding 1 (history, writable) and binding 4 (token
// slot), and sample_common.inc.glsl.

#define S_MAX_EOS 16
uniform uint u_out_index; // element of binding 4 that receives the id (S_INVALID: none)
uniform uint u_n_eos;
uniform uint u_eos[S_MAX_EOS];

void s_emit(uint id, bool write_out)
{
    if (write_out && u_out_index != S_INVALID)
        T[u_out_index] = id;
    H[H_DRAWS] += 1u;
    if (H[H_STOP] != S_INVALID)
        return;
    uint n = H[H_N];
    if (n >= H[H_CAP])
        return; // the CPU never records a step that would pass the capacity
    H[H_IDS + n] = id;
    H[H_N] = n + 1u;
    for (uint e = 0u; e < min(u_n_eos, uint(S_MAX_EOS)); e++)
        if (id == u_eos[e]) {
            H[H_STOP] = n;
            break;
        }
}
