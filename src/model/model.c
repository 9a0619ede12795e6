/* model.c: source-independent helpers over a loaded model's tensor table. */
#include "model/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct dg_tensor *dg_model_find(const struct dg_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

const struct dg_tensor *dg_model_findf(const struct dg_model *m, const char *fmt, ...)
{
    char name[DG_TENSOR_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return dg_model_find(m, name);
}

int64_t dg_tensor_nelems(const struct dg_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}
