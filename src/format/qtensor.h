/*
 * qtensor.h — packed tensors on a backend (internal to libgptq): the four
 * tensors of a gptq_packed in buffers of one backend, for the model's
 * quantized forward and the solver's device path.
 */
#ifndef GPTQ_FORMAT_QTENSOR_H
#define GPTQ_FORMAT_QTENSOR_H

#include "format.h"

/* The buffers, and the vtable's view of them (t points into them). */
typedef struct gptq_qdev {
    gptq_buf *qweight, *qzeros, *scales, *g_idx;
    gptq_qtensor t;
} gptq_qdev;

/* Upload p (checked first: shapes, g_idx) as format fmt. with_qweight 0:
 * qweight is not uploaded (the caller's device buffer is put in t.qweight). */
int gptq_qdev_upload(gptq_backend *be, const gptq_packed *p, gptq_format fmt, int with_qweight,
                     gptq_qdev *out);
void gptq_qdev_free(gptq_backend *be, gptq_qdev *q);

#endif /* GPTQ_FORMAT_QTENSOR_H */
