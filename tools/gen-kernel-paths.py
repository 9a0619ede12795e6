#!/usr/bin/env python3
"""Generates the built-in kernel paths kernel-paths/<family>-<format>.json (run from the repository root).

The files are committed; this script is how they are kept consistent. Each family differs only in the
few steps its architecture needs (biases, q/k norms, sandwich norms, soft-capping); each weight format
differs in the weights' GPU format and in whether fused kernels are used."""
import json, os

FAMILIES = {
    "llama":   dict(bias=False, qknorm=False, sandwich=False, final_softcap=False, desc="Llama 2/3 (Llama 3 rope scaling, tied or untied embeddings)"),
    "mistral": dict(bias=False, qknorm=False, sandwich=False, final_softcap=False, desc="Mistral (sliding-window attention)"),
    "qwen2":   dict(bias=True,  qknorm=False, sandwich=False, final_softcap=False, desc="Qwen2 / Qwen2.5 (q/k/v biases)"),
    "qwen3":   dict(bias=False, qknorm=True,  sandwich=False, final_softcap=False, desc="Qwen3 dense (per-head q/k RMSNorm)"),
    "gemma2":  dict(bias=False, qknorm=False, sandwich=True,  final_softcap=True,  desc="Gemma 2 (sandwich norms, attention and final soft-caps, alternating sliding window)"),
    "gemma3":  dict(bias=False, qknorm=True,  sandwich=True,  final_softcap=False, desc="Gemma 3 text (q/k norm, 5 local : 1 global layers with two rope bases)"),
    "phi3":    dict(bias=False, qknorm=False, sandwich=False, final_softcap=False, desc="Phi-3 (fused qkv and gate_up split by the reader; longrope)"),
    # Mixture of experts: router matmul, GPU routing (moe_route), the selected experts' FFNs reading the
    # expert ids from the GPU (moe_gate_up, moe_down with the weighted combine into the residual).
    "mixtral":   dict(bias=False, qknorm=False, sandwich=False, final_softcap=False, moe=True,
                      desc="Mixtral (softmax/top-2 routing, SwiGLU experts, optional sliding window)"),
    "qwen3_moe": dict(bias=False, qknorm=True, sandwich=False, final_softcap=False, moe=True, dense_layers=True,
                      desc="Qwen3-MoE (q/k norm, top-k renormalized, dense layers from decoder_sparse_step / mlp_only_layers)"),
    "gpt_oss":   dict(bias=True, o_bias=True, qknorm=False, sandwich=False, final_softcap=False, moe=True,
                      sinks=True, expert_bias=True, router_bias=True,
                      desc="GPT-OSS (attention biases and sinks, alternating sliding window, yarn rope, top-k/softmax routing with a router bias, clamped SwiGLU experts with biases)"),
    "phimoe":    dict(bias=True, o_bias=True, qknorm=False, sandwich=False, final_softcap=False, moe=True,
                      layernorm=True, lm_head_bias=True,
                      desc="PhiMoE (LayerNorm with bias, attention and LM-head biases, sparsemixer top-2 routing)"),
}

FORMATS = {
    "f32":             dict(wf="f32",  fused=True,  desc="weights as f32 (BF16/F16 converted at load)"),
    "f16-native":      dict(wf="f16",  fused=True,  desc="weights as f16 pairs"),
    "q8_0":            dict(wf="q8_0", fused=True,  desc="Q8_0 weights read in GGUF layout (quantized at load when the source is float)"),
    "q4k-fused":       dict(wf="q4_k", fused=True,  desc="Q4_K(_M) weights dequantized inside the GEMV, fused kernels", fallback="q4k-dequant-f16"),
    "q4k-dequant-f16": dict(wf="f16",  fused=False, desc="Q4_K weights dequantized to f16 at load, unfused kernels (the safe fallback)"),
    "q4k-dequant-f32": dict(wf="f32",  fused=False, desc="Q4_K weights dequantized to f32 at load, unfused kernels (debugging)"),
    # GPT-OSS as it ships: MXFP4 experts read in their blocks by the expert kernels, every other matrix f16
    "mxfp4":           dict(wf="mxfp4", fused=True, desc="MXFP4 expert weights read as-is (E2M1 values, E8M0 block scales), other matrices as f16",
                           fallback="q4k-dequant-f16", only=("gpt_oss",)),  # unfused, experts dequantized to f16
}

L = "layer.{L}."

def mm(w, inp, out, bias=None, role=None, acc=False, norm_in=None, **extra):
    s = {"op": "matmul", "kernel": "matmul", "weights": {"weight": w} if not bias else {"weight": w, "bias": bias},
         "input": inp, "output": out}
    if norm_in:
        s["weights"]["norm_in"] = norm_in
    c = {}
    if acc:
        c["ACCUMULATE"] = 1
    c.update(extra)
    if c:
        s["constants"] = c
    if role:
        s["role"] = role
    return s

def norm(w, inp, out, op="rmsnorm", acc=False, bias=False):
    s = {"op": op, "kernel": "rmsnorm", "weights": {"weight": w, "bias": w + ".bias"} if bias else {"weight": w},
         "input": inp, "output": out}
    if acc:
        s["constants"] = {"ACCUMULATE": 1}
    return s

def fuse_norm(f, fused):
    """Fused paths of RMSNorm families fold each layer's norms into the matmuls that read them (matmul's
    norm_in) for decode, where a norm is a latency-bound dependent dispatch. Prefill keeps separate norm
    steps: there a norm is one cheap dispatch for the whole batch, while a fused one would be recomputed
    by every workgroup of every matmul that reads it."""
    return fused and not f.get("layernorm", False)

def layer_steps(f, fused, fuse_norms=None, prefill=False):
    ln = f.get("layernorm", False)
    if fuse_norms is None:
        fuse_norms = fuse_norm(f, fused)
    if fuse_norms:
        st, xin, nin = [], "hidden_state", L + "input_layernorm"
    else:
        st, xin, nin = [norm(L + "input_layernorm", "hidden_state", "norm_out", bias=ln)], "norm_out", None
    for p, slot in (("q", "q"), ("k", "k"), ("v", "v")):
        st.append(mm(L + f"self_attn.{p}_proj", xin, slot,
                     bias=(L + f"self_attn.{p}_proj.bias") if f["bias"] else None, norm_in=nin))
    if f["qknorm"]:
        st.append(dict(norm(L + "self_attn.q_norm", "q", "q", op="qk_norm"), role="q_norm"))
        st.append(dict(norm(L + "self_attn.k_norm", "k", "k", op="qk_norm"), role="k_norm"))
    if fused:
        st.append({"op": "rope_kv", "kernel": "rope_kv", "input": ["q", "k", "v"], "output": ["q", "k_cache", "v_cache"]})
    else:
        st.append({"op": "rope", "kernel": "rope", "input": ["q", "k"], "output": ["q", "k"]})
        st.append({"op": "kv_write", "kernel": "kv_write", "input": ["k", "v"], "output": ["k_cache", "v_cache"]})
    att = {"op": "attention", "kernel": "attention", "input": ["q", "k_cache", "v_cache"], "output": "attn_out"}
    if f.get("sinks"):
        att["weights"] = {"sinks": L + "self_attn.sinks"}
    st.append(att)
    if f["sandwich"]:
        st.append(mm(L + "self_attn.o_proj", "attn_out", "proj_out"))
        if fused:
            st.append({"op": "add_rmsnorm", "kernel": "add_rmsnorm",
                       "weights": {"post_norm": L + "post_attention_layernorm", "weight": L + "pre_feedforward_layernorm"},
                       "input": ["proj_out", "hidden_state"], "output": ["hidden_state", "norm_out"],
                       "role": "pre_feedforward_layernorm"})
        else:
            st.append(dict(norm(L + "post_attention_layernorm", "proj_out", "hidden_state", op="post_norm", acc=True)))
            st.append(norm(L + "pre_feedforward_layernorm", "hidden_state", "norm_out"))
    else:
        st.append(mm(L + "self_attn.o_proj", "attn_out", "hidden_state", acc=True,
                     bias=(L + "self_attn.o_proj.bias") if f.get("o_bias") else None))
        if f.get("moe") or not fuse_norms:
            st.append(norm(L + "post_attention_layernorm", "hidden_state", "norm_out", bias=ln))
        else:
            return st + ffn_steps(f, fused, xin="hidden_state", norm_in=L + "post_attention_layernorm")
    if f.get("moe"):
        return st + moe_steps(f, fused, prefill)
    return st + ffn_steps(f, fused)

def moe_steps(f, fused, prefill=False):
    """Decode: each token's k experts (moe_gate_up, moe_down with the combine fused). Prefill: expert-major
    (moe_group lists each expert's tokens; the grouped kernels read an expert's rows once per TB of them;
    moe_combine adds the weighted outputs into the residual)."""
    eb = f.get("expert_bias", False)
    r = mm(L + "mlp.router", "norm_out", "router_logits", bias=(L + "mlp.router.bias") if f.get("router_bias") else None,
           role="router")
    gw = {"gate": L + "mlp.experts.gate_proj", "up": L + "mlp.experts.up_proj"}
    dw = {"weight": L + "mlp.experts.down_proj"}
    if eb:
        gw.update({"bias": L + "mlp.experts.gate_proj.bias", "up_bias": L + "mlp.experts.up_proj.bias"})
        dw["bias"] = L + "mlp.experts.down_proj.bias"
    st = [r,
          {"op": "moe_route", "kernel": "moe_route", "input": "router_logits", "output": "moe_sel"},
          {"op": "moe_gate_up", "kernel": "moe_gate_up", "weights": gw, "input": ["norm_out", "moe_sel"],
           "output": "moe_act", "role": "experts_gate_up"},
          {"op": "moe_down", "kernel": "moe_down", "weights": dw, "input": ["moe_act", "hidden_state", "moe_sel"],
           "output": "hidden_state", "role": "experts_down"}]
    if prefill:
        st[2:] = [
          {"op": "moe_group", "kernel": "moe_group", "input": "moe_sel", "output": "moe_groups", "role": "experts_group"},
          {"op": "moe_gate_up", "kernel": "moe_gate_up_grouped", "weights": gw, "input": ["norm_out", "moe_groups"],
           "output": "moe_act", "role": "experts_gate_up"},
          {"op": "moe_down", "kernel": "moe_down_grouped", "weights": dw, "input": ["moe_act", "moe_groups"],
           "output": "moe_out", "role": "experts_down"},
          {"op": "moe_combine", "kernel": "moe_combine", "input": ["moe_out", "hidden_state", "moe_sel"],
           "output": "hidden_state", "role": "experts_combine"}]
    for s in st:
        s["layers"] = "moe"
    if f.get("dense_layers"):
        dense = ffn_steps(f, fused)
        for s in dense:
            s["layers"] = "dense"
        st += dense
    return st

def ffn_steps(f, fused, xin="norm_out", norm_in=None):
    st = []
    if fused:
        gu = {"op": "ffn_gate_up", "kernel": "ffn_gate_up",
              "weights": {"gate": L + "mlp.gate_proj", "up": L + "mlp.up_proj"},
              "input": xin, "output": "ffn_act", "role": "gate_up_proj"}
        if norm_in:
            gu["weights"]["norm_in"] = norm_in
        st.append(gu)
    else:
        st.append(mm(L + "mlp.gate_proj", "norm_out", "gate"))
        st.append(mm(L + "mlp.up_proj", "norm_out", "up"))
        st.append({"op": "glu", "kernel": "glu", "input": ["gate", "up"], "output": "ffn_act"})
    if f["sandwich"]:
        st.append(mm(L + "mlp.down_proj", "ffn_act", "proj_out"))
        st.append(norm(L + "post_feedforward_layernorm", "proj_out", "hidden_state", op="post_norm", acc=True))
    else:
        st.append(mm(L + "mlp.down_proj", "ffn_act", "hidden_state", acc=True))
    return st

def path(fam, fmt):
    f, w = FAMILIES[fam], FORMATS[fmt]
    pid = f"{fam}-{fmt}"
    # postLayer serves prefill too (every position's logits for eval): the final norm stays a step
    head = mm("lm_head|embed_tokens", "norm_out", "logits", role="lm_head",
              bias="lm_head.bias" if f.get("lm_head_bias") else None)
    head["op"] = "lm_head"
    if f["final_softcap"]:
        head["constants"] = {"SOFTCAP": "$final_softcap"}
    p = {
        "id": pid,
        "name": f"{fam} {fmt}",
        "description": f"{f['desc']}; {w['desc']}.",
        "family": fam,
        "weightFormat": w["wf"],
        "kvDtype": "f32" if w["wf"] == "f32" else "f16",
        "fused": w["fused"],
        "preLayer": [{"op": "embed", "kernel": "embed", "weights": {"table": "embed_tokens"},
                      "input": "token_ids", "output": "hidden_state"}],
        "decode": {"steps": layer_steps(f, w["fused"])},
        **({"prefill": {"steps": layer_steps(f, w["fused"], fuse_norms=False, prefill=True)}}
           if f.get("moe") or fuse_norm(f, w["fused"]) else {}),
        "postLayer": [norm("norm", "hidden_state", "norm_out", bias=f.get("layernorm", False)), head],
        "sampling": [{"op": "argmax", "kernel": "argmax", "input": "logits", "output": "token_out"}],
    }
    if "fallback" in w:
        p["fallback"] = f"{fam}-{w['fallback']}"
    return p

os.makedirs("kernel-paths", exist_ok=True)
n = 0
for fam in FAMILIES:
    for fmt in FORMATS:
        if "only" in FORMATS[fmt] and fam not in FORMATS[fmt]["only"]:
            continue
        p = path(fam, fmt)
        with open(f"kernel-paths/{p['id']}.json", "w") as fh:
            json.dump(p, fh, indent=1)
            fh.write("\n")
        n += 1
print(n, "paths written")
