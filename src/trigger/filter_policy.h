/* SNS subscription filter policies on message attributes, and the message
 * attributes they look at.
 *
 * A policy is a JSON object of at most FILTER_POLICY_MAX_KEYS attribute
 * names, each with a non-empty list of conditions; a message passes when
 * every name's list has a condition its attribute meets (AND across names,
 * OR within a list). A condition is
 *   "text"                          the string, exactly (case-sensitive)
 *   12.5                            the number (to five decimals)
 *   {"prefix": "text"}              a string that begins so
 *   {"anything-but": V}             V a string, a number, a list of them,
 *                                   or {"prefix": "text"}: any value that
 *                                   is none of them (the attribute present)
 *   {"numeric": ["=", N]}           a number compared: =, <, <=, >, >=, or
 *   {"numeric": [">", A, "<=", B]}  a range (lower bound first)
 *   {"exists": true|false}          the attribute is there, or is not
 * The product of the lists' lengths may be at most
 * FILTER_POLICY_MAX_COMBINATIONS, and numbers are within ±10^9, as SNS
 * has it.
 *
 * Attributes are SNS's {"Name": {"Type": T, "Value": V}} with T String,
 * Number, String.Array (V a JSON array in a string) or Binary (V base64;
 * policies never see Binary attributes). Strings match String values and
 * the strings of a String.Array; numbers and numeric ranges match Number
 * values and the numbers of a String.Array; an array attribute meets a
 * condition when one of its elements does.
 *
 * Parsing happens once, with errors that name the place ("filter.color[1]:
 * …"); matching allocates nothing. */
#ifndef MAYFLY_TRIGGER_FILTER_POLICY_H
#define MAYFLY_TRIGGER_FILTER_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define FILTER_POLICY_MAX_KEYS 5
#define FILTER_POLICY_MAX_COMBINATIONS 150
#define FILTER_ATTRS_MAX 10          /* attributes on one message, as SNS */
#define FILTER_ATTR_NAME_MAX 256

typedef struct filter_policy filter_policy_t;
typedef struct filter_attrs filter_attrs_t;

/* Parses policy; field names it in errors ("filter"). -EINVAL on a policy
 * that is not one of the shapes above. */
int filter_policy_parse(const json_t *policy, const char *field, filter_policy_t **out,
                        mf_error_t *err);
/* The policy in a canonical form: names sorted, every condition written
 * as its operator object or literal. Parsing it gives the same policy. */
json_t *filter_policy_json(const filter_policy_t *p);
void filter_policy_free(filter_policy_t *p);

/* True when the message with attributes a (NULL: none) passes p. */
bool filter_policy_matches(const filter_policy_t *p, const filter_attrs_t *a);

/* Parses a message's attributes (NULL or JSON null: none). With
 * allow_short, a member may also be a bare value: a string is a String, a
 * number a Number, an array a String.Array. field names it in errors. */
int filter_attrs_parse(const json_t *attrs, bool allow_short, const char *field,
                       filter_attrs_t **out, mf_error_t *err);
/* SNS's MessageAttributes object for the attributes, values as strings. */
json_t *filter_attrs_sns(const filter_attrs_t *a);
/* The bytes the names, types and values take (they count towards a
 * message's size, as on SNS). */
size_t filter_attrs_bytes(const filter_attrs_t *a);
void filter_attrs_free(filter_attrs_t *a);

#endif
