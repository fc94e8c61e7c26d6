/* mayfly publish TOPIC MESSAGE: POST /v1/topics/{name}/publish, printing
 * the message's id once it and its deliveries are on disk. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char publish_usage[] =
    "usage: mayfly publish TOPIC MESSAGE [--subject S] [--attribute NAME[:TYPE]=VALUE]...\n"
    "\n"
    "Publishes MESSAGE (text; - reads it from stdin) to TOPIC: every\n"
    "subscribed function whose filter policy the attributes pass gets it as\n"
    "SNS's Lambda event. Prints the message's id once the message and its\n"
    "deliveries are on disk.\n"
    "\n"
    "options:\n"
    "  --subject S                   the message's subject (Sns.Subject)\n"
    "  --attribute NAME[:TYPE]=VALUE  a message attribute; TYPE String (the\n"
    "                                default), Number, String.Array (VALUE a\n"
    "                                JSON array) or Binary (VALUE base64)\n"
    "  --json                        print the server's answer: the message id\n"
    "                                and each delivery's request id\n"
    "  -h, --help                    show this help\n";

/* NAME[:TYPE]=VALUE into attrs as {"Type", "Value"}. */
static int add_attribute(json_t *attrs, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return cli_usage_error("publish", publish_usage,
                               "--attribute needs NAME[:TYPE]=VALUE, not `%s`", arg);
    const char *colon = memchr(arg, ':', (size_t)(eq - arg));
    const char *name_end = colon ? colon : eq;
    char name[300], type[32] = "String";
    if ((size_t)(name_end - arg) >= sizeof name ||
        (colon && (size_t)(eq - colon - 1) >= sizeof type))
        return cli_usage_error("publish", publish_usage, "--attribute `%s` is too long", arg);
    snprintf(name, sizeof name, "%.*s", (int)(name_end - arg), arg);
    if (colon)
        snprintf(type, sizeof type, "%.*s", (int)(eq - colon - 1), colon + 1);
    json_object_set_new(attrs, name, json_pack("{ss ss}", "Type", type, "Value", eq + 1));
    return -1;
}

static int read_all(FILE *in, buf_t *out)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
        buf_add(out, chunk, n);
    return ferror(in) ? -EIO : 0;
}

int cmd_publish(int argc, char **argv)
{
    static const struct option options[] = {
        {"subject", required_argument, NULL, 's'},
        {"attribute", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *subject = NULL;
    bool as_json = false;
    cleanup_json json_t *attrs = json_object();
    int opt, rc;
    cli_getopt_begin(argc, argv, "publish");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(publish_usage, stdout); return CLI_EXIT_OK;
        case 's': subject = optarg; break;
        case 'j': as_json = true; break;
        case 'a':
            if ((rc = add_attribute(attrs, optarg)) >= 0)
                return rc;
            break;
        default: return cli_usage_error("publish", publish_usage, NULL);
        }
    }
    if (argc - optind < 2)
        return cli_usage_error("publish", publish_usage, "missing %s",
                               argc == optind ? "TOPIC and MESSAGE" : "MESSAGE");
    if (argc - optind > 2)
        return cli_usage_error("publish", publish_usage, "unexpected argument `%s`",
                               argv[optind + 2]);
    const char *topic = argv[optind], *message = argv[optind + 1];
    if (!*topic)
        return cli_usage_error("publish", publish_usage, "TOPIC is empty");
    cleanup_buf buf_t text = BUF_INIT;
    if (!strcmp(message, "-")) {
        if (read_all(stdin, &text) < 0) {
            fprintf(stderr, "mayfly publish: cannot read the message from stdin\n");
            return CLI_EXIT_ERROR;
        }
    } else {
        buf_adds(&text, message);
    }
    json_t *msg = json_stringn(text.data, text.len);
    if (!msg)
        return cli_usage_error("publish", publish_usage, "MESSAGE must be UTF-8 text");
    cleanup_json json_t *body = json_pack("{so}", "message", msg);
    if (subject)
        json_object_set_new(body, "subject", json_string(subject));
    if (json_object_size(attrs))
        json_object_set(body, "attributes", attrs);

    cleanup_buf buf_t path = BUF_INIT, out = BUF_INIT;
    buf_adds(&path, "/v1/topics/");
    cli_url_encode(&path, topic);
    buf_adds(&path, "/publish");
    json_dump_buf(&out, body);
    client_header_t ctype = {"Content-Type", "application/json"};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, out.data, out.len, &ctype, 1, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 202) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    if (as_json) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "message_id"));
    if (!id) {
        fprintf(stderr, "mayfly publish: the server's answer has no message_id\n");
        return CLI_EXIT_ERROR;
    }
    printf("%s\n", id);
    return CLI_EXIT_OK;
}
