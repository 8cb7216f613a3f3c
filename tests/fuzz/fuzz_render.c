/* fuzz_render.c: hostile texts straight into invoice fields (past the event parser, so invalid
 * UTF-8 and every control reach the renderers too), rendered by every adapter, Midnight in both
 * formats. The input is split at NUL bytes: the first piece goes into po_number, where the
 * answer is fixed (XML refuses exactly what XML 1.0 cannot carry, JSON only invalid UTF-8, a
 * carried text comes back unchanged); further pieces go into eight other fields, where a render
 * must refuse with a UTF-8 message or give a well-formed body. See render_check.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_utf8.h"
#include "render_check.h"

static iw_rc rc;
static bool ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        if (iw_rc_init(&rc) != 0)
            abort();
        ready = true;
    }
    /* NUL-separated pieces, copied so each is a C string */
    char *copy = malloc(size + 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *pieces[1 + IW_RC_N_FIELDS];
    size_t n = 0;
    for (size_t i = 0; n < 1 + IW_RC_N_FIELDS;) {
        pieces[n++] = copy + i;
        i += strlen(copy + i) + 1;
        if (i > size)
            break;
    }
    char why[512];
    for (size_t t = 0; t < IW_RC_N_TARGETS; t++) {
        if (!iw_rc_check(&rc, t, pieces[0], pieces + 1, n - 1, why, sizeof(why)))
            iw_fuzz_fail(why, pieces[0], strlen(pieces[0]) + 1);
    }
    free(copy);
    return 0;
}
