/* libFuzzer target: the mask spec parsers, as a request's mask parameter or a
 * preset reaches them. The input is the text given to chill_mask_parse and
 * then to chill_mask_parse_json. A mask either parses, or the parser says why;
 * one that parses formats to a canonical spec that parses back to the same
 * mask, and its range functions agree with its predicate
 * (chill_mask_verify), whatever its arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chill.h"
#include "fuzz.h"

static void fail(const char *what, const char *spec, const char *detail) {
    fprintf(stderr, "fuzz_mask: %s for \"%s\": %s\n", what, spec, detail);
    abort();
}

static void check_parsed(const chill_mask *m, const char *spec) {
    char canon[256];
    int n = chill_mask_format(m, canon, sizeof canon);
    if (n <= 0 || (size_t)n >= sizeof canon)
        fail("a parsed mask did not format", spec, "");
    chill_mask again;
    chill_error err = {0};
    if (chill_mask_parse(canon, &again, &err) != CHILL_OK)
        fail("the canonical spec did not parse back", spec, err.message);
    int same = again.type == m->type;
    for (int i = 0; same && i < chill_mask_nargs(m->type); i++)
        same = again.arg[i] == m->arg[i];
    if (!same)
        fail("the canonical spec parsed to another mask", spec, canon);
    if (chill_mask_verify(m, 37, &err) != CHILL_OK)
        fail("the mask's ranges disagree with its predicate", spec, err.message);
}

static void parse_with(chill_status (*parse)(const char *, chill_mask *, chill_error *), const char *spec) {
    chill_mask m;
    chill_error err = {0};
    if (parse(spec, &m, &err) == CHILL_OK)
        check_parsed(&m, spec);
    else if (err.message[0] == '\0')
        fail("refused without a message", spec, "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = chill_fuzz_text(data, size);
    if (spec == NULL)
        return 0;
    parse_with(chill_mask_parse, spec);
    parse_with(chill_mask_parse_json, spec);
    free(spec);
    return 0;
}
