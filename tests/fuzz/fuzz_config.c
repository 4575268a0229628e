/* libFuzzer target: the configuration file's parser (chill_config_parse, what
 * `chilld --config` and `--check-config` run). The input is the file's text.
 * It either loads, or the parser says what was wrong; a configuration that
 * loads can be explained field by field (chill_config_explain). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = chill_fuzz_text(data, size);
    if (text == NULL)
        return 0;
    chill_config c;
    chill_config_defaults(&c);
    char err[512] = "";
    if (chill_config_parse(&c, text, err, sizeof err) == 0) {
        FILE *null = fopen("/dev/null", "w");
        if (null != NULL) {
            chill_config_explain(&c, null);
            fclose(null);
        }
    } else if (err[0] == '\0') {
        fprintf(stderr, "fuzz_config: refused without a message: \"%s\"\n", text);
        abort();
    }
    free(text);
    return 0;
}
