/* libFuzzer target: a function URL's settings as a client sends them.
 * What parses must come back the same from its own JSON (what the store
 * keeps and the server reads at start), and a refusal must say why.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "trigger/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, 0, &jerr);
    if (!body)
        return 0;
    url_config_t c = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (url_config_parse(body, &c, &err) == 0) {
        json_t *shown = url_config_settings_json(&c);
        url_config_t again = { 0 };
        mf_error_t err2 = MF_ERROR_INIT;
        if (url_config_parse(shown, &again, &err2) < 0) {
            fprintf(stderr, "fuzz_url_config: its own JSON is refused: %s\n", err2.msg);
            abort();
        }
        json_t *shown2 = url_config_settings_json(&again);
        if (!json_equal(shown, shown2))
            abort();
        json_decref(shown);
        json_decref(shown2);
        url_config_clear(&again);
        url_config_clear(&c);
    } else if (!err.msg[0]) {
        abort();
    }
    json_decref(body);
    return 0;
}
