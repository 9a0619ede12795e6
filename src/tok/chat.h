/* chat.h: built-in chat-template renderers (Gemma 3, Llama 3, Qwen 3 / Qwen 2.5 / ChatML, Llama 2 and
 * Mistral [INST]), picked by recognising the model's Jinja chat_template string. We do not run Jinja: each
 * renderer reproduces its family's template byte for byte (checked against transformers' renders). */
#ifndef DG_TOK_CHAT_H
#define DG_TOK_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "tok/tokenizer.h"

struct dg_chat_msg {
    const char *role;    /* "system", "user", "assistant" (Qwen also "tool") */
    const char *content;
};

enum dg_chat_format {
    DG_CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|>\n; also the fallback */
    DG_CHAT_QWEN3,   /* ChatML with <think> handling of assistant turns */
    DG_CHAT_QWEN25,  /* ChatML with Qwen 2.5's default system message */
    DG_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    DG_CHAT_GEMMA,   /* <start_of_turn>user|model\n...<end_of_turn>\n, system folded into the first turn */
    DG_CHAT_LLAMA2,  /* <s>[INST] <<SYS>>...<</SYS>> ... [/INST] */
    DG_CHAT_MISTRAL, /* <s>[INST] ... [/INST]answer</s> */
};

struct dg_chat_opts {
    const char *bos, *eos;      /* token text for bos_token / eos_token ("" when none) */
    bool add_generation_prompt; /* end with the assistant header */
    int enable_thinking;        /* Qwen 3: -1 undefined (template default), 0 false, 1 true */
};

/* Recognises a chat template. Returns false for NULL or an unknown template (then *out = DG_CHAT_CHATML). */
bool dg_chat_detect(const char *tmpl, enum dg_chat_format *out);
const char *dg_chat_format_name(enum dg_chat_format f);
/* Renders messages into a malloc'd string. Errors (DG_E_USAGE) for role orders the template rejects. */
dg_status dg_chat_render(enum dg_chat_format f, const struct dg_chat_opts *o, const struct dg_chat_msg *msgs,
                         size_t n, char **out);
/* Renders with the tokenizer's own template, BOS and EOS text. An unrecognised or missing template logs a
 * warning naming the fallback (ChatML) used. */
dg_status dg_chat_render_for(const struct dg_tokenizer *tok, const struct dg_chat_msg *msgs, size_t n,
                             bool add_generation_prompt, char **out);

#endif
