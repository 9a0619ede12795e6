/* tensor_spec.h: the canonical tensors (model.h names and shapes) a model with given hyperparameters has.
 * One list for the random-weight generator and for checking a manifest's shapes against its config. */
#ifndef DG_MODEL_TENSOR_SPEC_H
#define DG_MODEL_TENSOR_SPEC_H

#include "core/status.h"
#include "model/model.h"

struct dg_tensor_spec {
    char name[DG_TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[3]; /* outermost first, canonical (untransposed) orientation */
};

/* Fills *out (malloc'd, caller frees) with every tensor of the model, in a natural file order. */
dg_status dg_tensor_specs(const struct dg_hparams *hp, struct dg_tensor_spec **out, int *n);

/* Checks that `m` holds every tensor of dg_tensor_specs(&m->hp) with its shape (the stored shape when
 * transposed; a fused layer.L.mlp.gate_up_proj [2I, hidden] standing for gate_proj + up_proj).
 * `what` names the model in messages. Extra tensors are allowed. */
dg_status dg_tensor_specs_check(const struct dg_model *m, const char *what);

#endif
