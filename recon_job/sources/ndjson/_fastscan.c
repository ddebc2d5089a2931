/*
 * The NDJSON scan's fast path in C: counts the plain completion records of a chunk of log lines.
 *
 * This is an accelerator of recon_job/sources/ndjson/source.py's ``_Scan.scan``, not a second
 * specification. For each line it either accepts the line -- it then adds exactly what the
 * Python fast path would add for it -- or it hands the line back ("bails"), and the Python scan
 * reads it as it reads every line without this module. A line is accepted only when it is
 * inside a strict subset of JSON that orjson parses to the same values (ASCII only, no escapes in
 * strings, no exponents, no duplicate keys among the ones read, nesting at most 32 deep), and
 * only when it is a record the Python fast path counts (no family or endpoint field, a timestamp
 * in one of the plain ISO forms or epoch integers, integer counts, a plain decimal cost with at
 * most 15 significant digits, a model the general path already classified as completions).
 * Everything else -- malformed lines, skips, other families, unusual shapes -- bails, so every
 * skip reason and location is still found by the Python code. tests/sources/ndjson/test_fastscan.py
 * checks, line by line over generated and mutated records, that an accepted line adds what the
 * Python path adds.
 *
 * scan_block(block: bytes, count: int, config: tuple)
 *   -> (groups, bailed, bailed_lines, outside, counted, prints, notes, group_lines)
 *   block: ``count`` lines joined by newlines (files.read_blocks).
 *   config: (start_ordinal, end_ordinal, naive_is_utc, need_project, group_project,
 *            group_api_key, project_filter: frozenset, dedupe, cents,
 *            model_families: dict, tiers: dict, standard: str, batch: str, completions: str)
 *   groups: [(first_index, day_ordinal, model, project, api_key, tier, input, cached, output,
 *             records, cost_units, cost_exponent)] -- tier None: the records logged a cost,
 *             cost_units is their sum in units of 10**-20 USD, cost_exponent the smallest
 *             exponent of the Decimals the Python path would have made of them.
 *   bailed, bailed_lines: indices of the lines handed back, in order, and those lines.
 *   prints: {day_ordinal: bytes of native int64 request-id fingerprints}.
 *   notes: {day_ordinal: records whose total_tokens disagree}.
 *   group_lines: the line that made each group (where a group too many is located).
 * repeats(buffers) -> list[int]: see below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32
#define FAST_MAX 1073741823LL /* 2**30 - 1: FAST_MAX_TOKENS */
#define P61 2305843009213693951ULL /* 2**61 - 1: hash() of an int is the int modulo it */

typedef __int128 i128;

enum { V_ABSENT = 0, V_NULL, V_TRUE, V_FALSE, V_INT, V_FLOAT, V_STR, V_OBJ, V_ARR };

typedef struct {
    int type;
    const char *s; /* strings: the characters, no quotes; numbers: the literal */
    Py_ssize_t n;
    int64_t i; /* V_INT */
} Val;

/* A details object (prompt_tokens_details ...): what the fast path looks at. */
typedef struct {
    int present, is_obj, members;
    Val cached, audio, reasoning, image;
} Details;

enum {
    U_PROMPT, U_COMPLETION, U_INPUT, U_OUTPUT, U_CACHED, U_TOTAL, U_NVALS
};
enum {
    D_PROMPT, D_INPUT, D_COMPLETION, D_OUTPUT, D_RT_INPUT, D_RT_OUTPUT, D_N
};

typedef struct {
    Val v[U_NVALS];
    Details d[D_N];
    unsigned seen; /* bit per key read: a second one bails */
} Usage;

enum {
    K_TIMESTAMP, K_MODEL, K_USAGE, K_FAMILY, K_ENDPOINT, K_COST, K_COST_USD, K_BATCH,
    K_SERVICE_TIER, K_PROJECT, K_API_KEY, K_REQUEST_ID, K_N
};

typedef struct {
    Val v[K_N];
    unsigned seen;
    Usage flat;
    int usage_is_obj;
    Usage nested;
} Record;

/* -- the JSON subset -------------------------------------------------------------------------- */

static inline const char *ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

/* Bytes that end an escape-free string's characters: the quote, a backslash, controls. */
static unsigned char stops[256];

/* A string without escapes or control characters; p at the opening quote. */
static const char *str(const char *p, const char *e, Val *out) {
    const char *start = ++p;
    while (p < e && !stops[(unsigned char)*p]) p++;
    if (p >= e || *p != '"') return NULL;
    if (out) { out->type = V_STR; out->s = start; out->n = p - start; }
    return p + 1;
}

/* A number of JSON's grammar without exponent; integers of at most 18 digits. */
static const char *num(const char *p, const char *e, Val *out) {
    const char *start = p;
    int neg = 0, digits = 0, frac = 0;
    int64_t v = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e || *p < '0' || *p > '9') return NULL;
    if (*p == '0') {
        p++;
        digits = 1;
        if (p < e && *p >= '0' && *p <= '9') return NULL; /* leading zero */
    } else {
        while (p < e && *p >= '0' && *p <= '9') {
            if (++digits > 18) return NULL;
            v = v * 10 + (*p - '0');
            p++;
        }
    }
    if (p < e && *p == '.') {
        p++;
        while (p < e && *p >= '0' && *p <= '9') { p++; frac++; }
        if (!frac) return NULL;
    }
    if (p < e && (*p == 'e' || *p == 'E')) return NULL;
    if (out) {
        out->type = frac ? V_FLOAT : V_INT;
        out->s = start;
        out->n = p - start;
        out->i = neg ? -v : v;
    }
    return p;
}

static const char *value(const char *p, const char *e, Val *out, int depth);

/* An object member's ``"key":`` -- the key into ``key``; p past the colon and spaces, or NULL
 * when malformed. */
static const char *member_key(const char *p, const char *e, Val *key) {
    if (p >= e || *p != '"') return NULL;
    p = str(p, e, key);
    if (!p) return NULL;
    p = ws(p, e);
    if (p >= e || *p != ':') return NULL;
    return ws(p + 1, e);
}

/* After a member's (or an element's) value: 1 with *pp at the next one after a comma, 0 with
 * *pp past the closing ``close``, -1 when malformed. */
static int member_end(const char **pp, const char *e, char close) {
    const char *p = ws(*pp, e);
    if (p >= e) return -1;
    if (*p == ',') { *pp = ws(p + 1, e); return 1; }
    if (*p == close) { *pp = p + 1; return 0; }
    return -1;
}

/* Any value, checked and passed over; ``out`` (optional) gets its type and, for scalars, text. */
static const char *container(const char *p, const char *e, int depth, char close) {
    if (depth > MAX_DEPTH) return NULL;
    p = ws(p + 1, e);
    if (p < e && *p == close) return p + 1;
    for (int more = 1; more;) {
        Val key;
        if (close == '}' && !(p = member_key(p, e, &key))) return NULL;
        if (!(p = value(p, e, NULL, depth + 1)) || (more = member_end(&p, e, close)) < 0)
            return NULL;
    }
    return p;
}

static const char *lit(const char *p, const char *e, const char *word, size_t n) {
    if ((size_t)(e - p) < n || memcmp(p, word, n) != 0) return NULL;
    return p + n;
}

static const char *value(const char *p, const char *e, Val *out, int depth) {
    Val tmp;
    Val *v = out ? out : &tmp;
    if (p >= e) return NULL;
    switch (*p) {
    case '"': return str(p, e, v);
    case '{': v->type = V_OBJ; return container(p, e, depth, '}');
    case '[': v->type = V_ARR; return container(p, e, depth, ']');
    case 't': v->type = V_TRUE; return lit(p, e, "true", 4);
    case 'f': v->type = V_FALSE; return lit(p, e, "false", 5);
    case 'n': v->type = V_NULL; return lit(p, e, "null", 4);
    default: return num(p, e, v);
    }
}

#define KEY(name) (n == sizeof(name) - 1 && memcmp(k, name, n) == 0)

/* A details object's members; a value other than an object is passed over. */
static const char *details(const char *p, const char *e, Details *d, int depth) {
    d->present = 1;
    if (*p != '{') {
        d->is_obj = 0;
        return value(p, e, NULL, depth);
    }
    d->is_obj = 1;
    if (depth > MAX_DEPTH) return NULL;
    unsigned seen = 0;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (int more = 1; more;) {
        Val key;
        if (!(p = member_key(p, e, &key))) return NULL;
        const char *k = key.s;
        Py_ssize_t n = key.n;
        Val *slot = NULL;
        unsigned bit = 0;
        if (KEY("cached_tokens")) { slot = &d->cached; bit = 1; }
        else if (KEY("audio_tokens")) { slot = &d->audio; bit = 2; }
        else if (KEY("reasoning_tokens")) { slot = &d->reasoning; bit = 4; }
        else if (KEY("image_tokens")) { slot = &d->image; bit = 8; }
        if (bit) {
            if (seen & bit) return NULL; /* orjson keeps the last: not ours to decide */
            seen |= bit;
        }
        d->members++;
        if (!(p = value(p, e, slot, depth + 1)) || (more = member_end(&p, e, '}')) < 0)
            return NULL;
    }
    /* A repeated key other than these four makes members exceed orjson's len(d): the checks
     * below then only ever bail, never accept wrongly. */
    return p;
}

/* One of the token keys a usage (or a flat record) holds; -1 when ``k`` is not one. */
static const char *usage_member(const char *k, Py_ssize_t n, const char *p, const char *e,
                                Usage *u, int depth, int *known) {
    int vi = -1, di = -1;
    if (KEY("prompt_tokens")) vi = U_PROMPT;
    else if (KEY("completion_tokens")) vi = U_COMPLETION;
    else if (KEY("input_tokens")) vi = U_INPUT;
    else if (KEY("output_tokens")) vi = U_OUTPUT;
    else if (KEY("cached_tokens")) vi = U_CACHED;
    else if (KEY("total_tokens")) vi = U_TOTAL;
    else if (KEY("prompt_tokens_details")) di = D_PROMPT;
    else if (KEY("input_tokens_details")) di = D_INPUT;
    else if (KEY("completion_tokens_details")) di = D_COMPLETION;
    else if (KEY("output_tokens_details")) di = D_OUTPUT;
    else if (KEY("input_token_details")) di = D_RT_INPUT;
    else if (KEY("output_token_details")) di = D_RT_OUTPUT;
    if (vi < 0 && di < 0) { *known = 0; return p; }
    *known = 1;
    unsigned bit = 1u << (vi >= 0 ? vi : U_NVALS + di);
    if (u->seen & bit) return NULL;
    u->seen |= bit;
    if (vi >= 0) return value(p, e, &u->v[vi], depth);
    return details(p, e, &u->d[di], depth);
}

static const char *usage_obj(const char *p, const char *e, Usage *u) {
    p = ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (int more = 1; more;) {
        Val key;
        int known;
        if (!(p = member_key(p, e, &key))) return NULL;
        const char *q = usage_member(key.s, key.n, p, e, u, 2, &known);
        if (q && !known) q = value(p, e, NULL, 2);
        if (!(p = q) || (more = member_end(&p, e, '}')) < 0) return NULL;
    }
    return p;
}

/* Whether any byte of [p, e) is past ASCII, eight at a time. */
static int non_ascii(const char *p, const char *e) {
    uint64_t any = 0;
    for (; e - p >= 8; p += 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        any |= word;
    }
    for (; p < e; p++) any |= (unsigned char)*p;
    return (any & 0x8080808080808080ULL) != 0;
}

/* The whole line as one object; 0 when it is outside the subset. */
static int parse_line(const char *p, const char *e, Record *r) {
    if (non_ascii(p, e)) return 0; /* UTF-8 checks are orjson's */
    p = ws(p, e);
    if (p >= e || *p != '{') return 0;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return 0; /* {} : no timestamp */
    for (int more = 1; more;) {
        Val key;
        if (!(p = member_key(p, e, &key))) return 0;
        const char *k = key.s;
        Py_ssize_t n = key.n;
        int ki = -1;
        switch (n) {
        case 4:
            if (KEY("cost")) ki = K_COST;
            break;
        case 5:
            if (KEY("model")) ki = K_MODEL;
            else if (KEY("usage")) ki = K_USAGE;
            else if (KEY("batch")) ki = K_BATCH;
            break;
        case 6:
            if (KEY("family")) ki = K_FAMILY;
            break;
        case 8:
            if (KEY("endpoint")) ki = K_ENDPOINT;
            else if (KEY("cost_usd")) ki = K_COST_USD;
            break;
        case 9:
            if (KEY("timestamp")) ki = K_TIMESTAMP;
            break;
        case 10:
            if (KEY("project_id")) ki = K_PROJECT;
            else if (KEY("api_key_id")) ki = K_API_KEY;
            else if (KEY("request_id")) ki = K_REQUEST_ID;
            break;
        case 12:
            if (KEY("service_tier")) ki = K_SERVICE_TIER;
            break;
        default:
            break;
        }
        const char *q;
        if (ki >= 0) {
            if (r->seen & (1u << ki)) return 0;
            r->seen |= 1u << ki;
            if (ki == K_USAGE && *p == '{') {
                r->v[ki].type = V_OBJ;
                r->usage_is_obj = 1;
                q = usage_obj(p, e, &r->nested);
            } else {
                q = value(p, e, &r->v[ki], 1);
            }
        } else {
            int known;
            q = usage_member(k, n, p, e, &r->flat, 1, &known);
            if (q && !known) q = value(p, e, NULL, 1);
        }
        if (!(p = q) || (more = member_end(&p, e, '}')) < 0) return 0;
    }
    return ws(p, e) == e;
}

/* -- days ------------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define EPOCH_ORDINAL 719163 /* date(1970, 1, 1).toordinal() */

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* The UTC day ordinal of the ISO forms datetime.fromisoformat reads the same way: YYYY-MM-DD,
 * then optionally T or space, HH:MM, :SS, .fraction (1-9 digits), Z or +HH:MM/-HH:MM. Returns 0
 * to bail (another form, an invalid date, or a naive time when the logs' zone is not UTC). */
static int iso_day(const char *s, Py_ssize_t n, int naive_is_utc, int64_t *ordinal) {
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0, aware = 0;
    if (n < 10 || s[4] != '-' || s[7] != '-') return 0;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d)) return 0;
    Py_ssize_t i = 10;
    if (i < n) {
        if (s[i] != 'T' && s[i] != ' ') return 0;
        if (n < i + 6 || s[i + 3] != ':') return 0;
        if (!digits(s + i + 1, 2, &h) || !digits(s + i + 4, 2, &mi)) return 0;
        i += 6;
        if (i < n && s[i] == ':') {
            if (n < i + 3 || !digits(s + i + 1, 2, &sec)) return 0;
            i += 3;
            if (i < n && s[i] == '.') {
                Py_ssize_t f = ++i;
                while (i < n && s[i] >= '0' && s[i] <= '9') i++;
                if (i == f || i - f > 9) return 0;
            }
        }
        if (i < n) {
            if (s[i] == 'Z' && i + 1 == n) {
                aware = 1;
            } else if ((s[i] == '+' || s[i] == '-') && i + 6 == n && s[i + 3] == ':') {
                if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om)) return 0;
                if (oh > 23 || om > 59) return 0;
                sign = s[i] == '+' ? 1 : -1;
                aware = 1;
            } else {
                return 0;
            }
        }
    }
    if (!aware && !naive_is_utc) return 0;
    if (y < 2 || y > 9998 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
        return 0;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > dim[mo - 1] + (mo == 2 && leap)) return 0;
    int64_t day = days_from_civil(y, mo, d);
    int minutes = h * 60 + mi - sign * (oh * 60 + om);
    if (minutes < 0) day -= 1;
    else if (minutes >= 1440) day += 1;
    *ordinal = day + EPOCH_ORDINAL;
    return 1;
}

/* -- costs ------------------------------------------------------------------------------------ */

/* A cost as the Python path makes it a Decimal (parse_cost): units of 10**-20 USD and the
 * Decimal's exponent. Numbers: orjson's int or float, then str() (the shortest repr: with at
 * most 15 significant digits, the literal's digits without trailing zeros; an integral float
 * keeps ".0"). Strings: the text as written (plain digits with an optional fraction). Cents are
 * scaleb(-2)'d. Bounded (at most 9 whole digits, 12 decimals) so that every sum stays exact in
 * the 28 digits of Python's default Decimal context, as the Python path's own sums do. Returns
 * 0 to bail. */
static int cost_of(const Val *v, int cents, i128 *units, int *exponent) {
    const char *s = v->s;
    Py_ssize_t n = v->n, i = 0;
    if (v->type != V_INT && v->type != V_FLOAT && v->type != V_STR) return 0;
    if (n == 0 || s[0] == '-') return 0;
    i128 whole = 0;
    int int_digits = 0, significant = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (whole || s[i] != '0') significant++;
        whole = whole * 10 + (s[i] - '0');
        if (whole) int_digits++;
        i++;
    }
    if (i == 0) return 0;
    int frac_digits = 0, kept = 0;
    i128 frac = 0;
    if (i < n) {
        if (s[i] != '.') return 0;
        i++;
        Py_ssize_t f = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == f || i != n) return 0;
        frac_digits = (int)(i - f);
        if (frac_digits > 18) return 0;
        kept = frac_digits;
        if (v->type == V_FLOAT)
            while (kept > 0 && s[f + kept - 1] == '0') kept--;
        for (int j = 0; j < frac_digits; j++) {
            frac = frac * 10 + (s[f + j] - '0');
            if (whole || frac) significant++;
        }
    }
    if (int_digits > 9 || kept > 12 || (v->type == V_STR && frac_digits > 12)) return 0;
    if (v->type != V_STR && significant > 15) return 0;
    i128 scale = 1; /* 10**-18 of the logged unit per unit of frac */
    for (int j = frac_digits; j < 18; j++) scale *= 10;
    i128 whole_scale = 1;
    for (int j = 0; j < 18; j++) whole_scale *= 10;
    *units = (whole * whole_scale + frac * scale) * (cents ? 1 : 100);
    if (v->type == V_INT) *exponent = 0;
    else if (v->type == V_FLOAT) *exponent = -(kept > 0 ? kept : 1);
    else *exponent = -frac_digits;
    if (cents) *exponent -= 2;
    return 1;
}

static PyObject *int128_to_py(i128 v) {
    char buf[64];
    int pos = 63, neg = v < 0;
    buf[pos] = 0;
    unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
    do {
        buf[--pos] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (neg) buf[--pos] = '-';
    return PyLong_FromString(buf + pos, NULL, 10);
}

/* -- groups ----------------------------------------------------------------------------------- */

typedef struct {
    int used;
    Py_ssize_t first;
    const char *first_s; /* the line that made it (in the caller's buffer) */
    Py_ssize_t first_n;
    int64_t day;
    PyObject *tier; /* borrowed: a config string, or NULL for records with a cost */
    char *model, *project, *api_key;
    Py_ssize_t model_n, project_n, api_key_n; /* -1: None */
    int64_t sums[4];
    i128 cost;
    int exponent;
    uint64_t hash;
} Group;

typedef struct {
    Group *slots;
    size_t cap, count;
    Py_ssize_t *order; /* slot indexes in creation order */
} Groups;

static uint64_t fnv(uint64_t h, const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ULL; }
    return h;
}

static int same(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn) {
    return an == bn && (an <= 0 || memcmp(a, b, (size_t)an) == 0);
}

static char *copy(const char *s, Py_ssize_t n) {
    if (n < 0) return NULL;
    char *c = PyMem_Malloc((size_t)n + 1);
    if (c) memcpy(c, s, (size_t)n);
    return c;
}

static int groups_grow(Groups *g) {
    size_t cap = g->cap ? g->cap * 2 : 64;
    Group *slots = PyMem_Calloc(cap, sizeof(Group));
    Py_ssize_t *order = PyMem_Malloc(cap * sizeof(Py_ssize_t));
    if (!slots || !order) { PyMem_Free(slots); PyMem_Free(order); return 0; }
    for (size_t i = 0; i < g->count; i++) {
        Group *old = &g->slots[g->order[i]];
        size_t j = old->hash & (cap - 1);
        while (slots[j].used) j = (j + 1) & (cap - 1);
        slots[j] = *old;
        order[i] = (Py_ssize_t)j;
    }
    PyMem_Free(g->slots);
    PyMem_Free(g->order);
    g->slots = slots;
    g->order = order;
    g->cap = cap;
    return 1;
}

static Group *group_for(Groups *g, int64_t day, PyObject *tier, const Val *model,
                        const Val *project, const Val *api_key, Py_ssize_t index,
                        const char *line, Py_ssize_t line_n) {
    Py_ssize_t pn = project ? project->n : -1, kn = api_key ? api_key->n : -1;
    const char *ps = project ? project->s : NULL, *ks = api_key ? api_key->s : NULL;
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)day ^ ((uint64_t)(uintptr_t)tier << 7);
    h = fnv(h, model->s, model->n);
    h = fnv(h * 31 + (uint64_t)pn, ps, pn > 0 ? pn : 0);
    h = fnv(h * 31 + (uint64_t)kn, ks, kn > 0 ? kn : 0);
    if ((g->count + 1) * 2 > g->cap && !groups_grow(g)) return NULL;
    size_t j = h & (g->cap - 1);
    while (g->slots[j].used) {
        Group *s = &g->slots[j];
        if (s->hash == h && s->day == day && s->tier == tier &&
            same(s->model, s->model_n, model->s, model->n) &&
            same(s->project, s->project_n, ps, pn) && same(s->api_key, s->api_key_n, ks, kn))
            return s;
        j = (j + 1) & (g->cap - 1);
    }
    Group *s = &g->slots[j];
    memset(s, 0, sizeof(*s));
    s->used = 1;
    s->first = index;
    s->first_s = line;
    s->first_n = line_n;
    s->day = day;
    s->tier = tier;
    s->hash = h;
    s->model = copy(model->s, model->n);
    s->model_n = model->n;
    s->project = copy(ps, pn);
    s->project_n = pn;
    s->api_key = copy(ks, kn);
    s->api_key_n = kn;
    s->exponent = 1; /* no cost yet */
    if (!s->model || (pn >= 0 && !s->project) || (kn >= 0 && !s->api_key)) return NULL;
    g->order[g->count++] = (Py_ssize_t)j;
    return s;
}

static void groups_free(Groups *g) {
    for (size_t i = 0; i < g->count; i++) {
        Group *s = &g->slots[g->order[i]];
        PyMem_Free(s->model);
        PyMem_Free(s->project);
        PyMem_Free(s->api_key);
    }
    PyMem_Free(g->slots);
    PyMem_Free(g->order);
}

/* Per-day arrays: the request-id fingerprints and the inconsistent totals. */
typedef struct {
    int64_t day;
    int64_t *prints;
    size_t n, cap;
    Py_ssize_t notes;
} Day;

typedef struct {
    Day *days;
    size_t n, cap;
} Days;

static Day *day_for(Days *ds, int64_t day) {
    for (size_t i = 0; i < ds->n; i++)
        if (ds->days[i].day == day) return &ds->days[i];
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 16;
        Day *more = PyMem_Realloc(ds->days, cap * sizeof(Day));
        if (!more) return NULL;
        ds->days = more;
        ds->cap = cap;
    }
    Day *d = &ds->days[ds->n++];
    memset(d, 0, sizeof(*d));
    d->day = day;
    return d;
}

static int day_print(Day *d, int64_t value) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 1024;
        int64_t *more = PyMem_Realloc(d->prints, cap * sizeof(int64_t));
        if (!more) return 0;
        d->prints = more;
        d->cap = cap;
    }
    d->prints[d->n++] = value;
    return 1;
}

static void days_free(Days *ds) {
    for (size_t i = 0; i < ds->n; i++) PyMem_Free(ds->days[i].prints);
    PyMem_Free(ds->days);
}

/* -- the models the general path classified --------------------------------------------------- */

typedef struct {
    char *name;
    Py_ssize_t n;
    int ok;
} Model;

typedef struct {
    Model *models;
    size_t n, cap;
    PyObject *families, *completions;
} Models;

/* 1 when ``model`` is a completions model the general path already saw; 0 bails; -1 error. */
static int model_ok(Models *ms, const Val *model) {
    for (size_t i = 0; i < ms->n; i++)
        if (same(ms->models[i].name, ms->models[i].n, model->s, model->n)) return ms->models[i].ok;
    PyObject *name = PyUnicode_FromStringAndSize(model->s, model->n);
    if (!name) return -1;
    PyObject *family = PyDict_GetItemWithError(ms->families, name);
    Py_DECREF(name);
    if (!family && PyErr_Occurred()) return -1;
    int ok = family != NULL && PyUnicode_Check(family) &&
             PyUnicode_Compare(family, ms->completions) == 0;
    if (PyErr_Occurred()) return -1;
    if (!ok) return 0; /* not remembered: the general path may classify it meanwhile */
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 16;
        Model *more = PyMem_Realloc(ms->models, cap * sizeof(Model));
        if (!more) { PyErr_NoMemory(); return -1; }
        ms->models = more;
        ms->cap = cap;
    }
    char *copied = copy(model->s, model->n);
    if (!copied) { PyErr_NoMemory(); return -1; }
    ms->models[ms->n++] = (Model){copied, model->n, 1};
    return 1;
}

static void models_free(Models *ms) {
    for (size_t i = 0; i < ms->n; i++) PyMem_Free(ms->models[i].name);
    PyMem_Free(ms->models);
}

/* -- one line --------------------------------------------------------------------------------- */

typedef struct {
    int64_t start, end;
    int naive_is_utc, need_project, group_project, group_api_key, dedupe, cents;
    PyObject *filter, *tiers, *standard, *batch;
} Config;

enum { BAIL = 0, COUNTED, OUTSIDE, FAILED };

static int is_int(const Val *v) { return v->type == V_INT; }

/* The tier of a record without a cost (tier_of), or NULL with an error set. */
static PyObject *tier_of(const Config *c, const Record *r, int *bail) {
    if (r->v[K_BATCH].type == V_TRUE) return c->batch;
    const Val *st = &r->v[K_SERVICE_TIER];
    if (st->type != V_STR) return c->standard;
    /* .strip().lower(): only spaces can surround an escape-free JSON string's text. */
    const char *s = st->s;
    Py_ssize_t n = st->n;
    while (n > 0 && *s == ' ') { s++; n--; }
    while (n > 0 && s[n - 1] == ' ') n--;
    char buf[64];
    if (n >= (Py_ssize_t)sizeof(buf)) return c->standard; /* no tier name is that long */
    for (Py_ssize_t i = 0; i < n; i++) buf[i] = (char)Py_TOLOWER(s[i]);
    PyObject *key = PyUnicode_FromStringAndSize(buf, n);
    if (!key) { *bail = -1; return NULL; }
    PyObject *tier = PyDict_GetItemWithError(c->tiers, key);
    Py_DECREF(key);
    if (!tier) {
        if (PyErr_Occurred()) { *bail = -1; return NULL; }
        return c->standard;
    }
    return tier;
}

static int count_line(const Config *c, const char *s, Py_ssize_t n, Py_ssize_t index,
                      Groups *groups, Days *days, Models *models) {
    Record r;
    memset(&r, 0, sizeof(r));
    if (!parse_line(s, s + n, &r)) return BAIL;

    /* The timestamp: an ISO string with "-" at [4], or epoch seconds/milliseconds. */
    const Val *ts = &r.v[K_TIMESTAMP];
    int64_t day;
    if (ts->type == V_STR) {
        if (!iso_day(ts->s, ts->n, c->naive_is_utc, &day)) return BAIL;
    } else if (ts->type == V_INT) {
        int64_t v = ts->i;
        if (v < 0 || v > 1000000000000000LL) return BAIL;
        int64_t seconds_day = v > 100000000000LL ? v / 86400000 : v / 86400;
        day = EPOCH_ORDINAL + seconds_day;
        if (day > 3652059) return BAIL; /* past date.max: the Python path's bad_timestamp */
    } else {
        return BAIL;
    }
    if (day < c->start || day >= c->end) return OUTSIDE;

    const Val *project = NULL;
    if (c->need_project) {
        const Val *pv = &r.v[K_PROJECT];
        if (pv->type == V_STR) {
            project = pv;
            if (PySet_GET_SIZE(c->filter)) {
                PyObject *name = PyUnicode_FromStringAndSize(pv->s, pv->n);
                if (!name) return FAILED;
                int in = PySet_Contains(c->filter, name);
                Py_DECREF(name);
                if (in < 0) return FAILED;
                if (!in) return BAIL; /* other_project: a skip, located by the Python path */
            }
        } else if (pv->type != V_ABSENT && pv->type != V_NULL) {
            return BAIL;
        }
    }
    const Val *model = &r.v[K_MODEL];
    if (model->type != V_STR || model->n == 0) return BAIL;
    if (r.v[K_FAMILY].type != V_ABSENT || r.v[K_ENDPOINT].type != V_ABSENT) return BAIL;

    /* Flat counts win over a usage object (present keys, null or not). */
    int flat = r.flat.v[U_PROMPT].type != V_ABSENT || r.flat.v[U_INPUT].type != V_ABSENT;
    Usage *u;
    if (flat) {
        u = &r.flat;
    } else {
        if (!r.usage_is_obj) return BAIL;
        u = &r.nested;
        if (r.flat.seen) return BAIL; /* token keys beside a usage object: the general path's */
    }
    if (r.flat.d[D_RT_INPUT].present || r.flat.d[D_RT_OUTPUT].present) return BAIL;
    int chat = u->v[U_PROMPT].type != V_ABSENT;
    const Val *inp = &u->v[chat ? U_PROMPT : U_INPUT];
    const Val *out = &u->v[chat ? U_COMPLETION : U_OUTPUT];
    if (inp->type == V_ABSENT || out->type == V_ABSENT) return BAIL;

    const Val *cached;
    static const Val zero = {V_INT, "0", 1, 0};
    Details *din = &u->d[u->d[D_PROMPT].present ? D_PROMPT : D_INPUT];
    if (din->present) {
        if (!din->is_obj || din->cached.type == V_ABSENT) return BAIL;
        if (din->members != 1 &&
            (din->members != 2 || !is_int(&din->audio) || din->audio.i != 0))
            return BAIL;
        cached = u->v[U_CACHED].type != V_ABSENT ? &u->v[U_CACHED] : &din->cached;
    } else if (u->d[D_RT_INPUT].present) {
        return BAIL;
    } else {
        cached = u->v[U_CACHED].type != V_ABSENT ? &u->v[U_CACHED] : &zero;
    }
    Details *dout = &u->d[chat ? D_COMPLETION : D_OUTPUT];
    if (dout->present) {
        if (!dout->is_obj) return BAIL;
        if (dout->members != 1 || dout->reasoning.type == V_ABSENT) {
            const Val *a = dout->audio.type != V_ABSENT ? &dout->audio : &zero;
            const Val *im = dout->image.type != V_ABSENT ? &dout->image : &zero;
            if (!is_int(a) || a->i || !is_int(im) || im->i) return BAIL;
        }
    } else if (u->d[D_RT_OUTPUT].present) {
        return BAIL;
    }
    const Val *total = &u->v[U_TOTAL];
    if (total->type != V_ABSENT && total->type != V_NULL && !is_int(total)) return BAIL;
    if (!is_int(inp) || !is_int(out) || !is_int(cached)) return BAIL;
    if (out->i < 0 || cached->i < 0 || cached->i > inp->i || inp->i > FAST_MAX ||
        out->i > FAST_MAX)
        return BAIL;

    /* The record's own cost (then no tier), else its tier. */
    PyObject *tier = NULL;
    i128 cost = 0;
    int exponent = 1;
    if (r.v[K_COST].type != V_ABSENT || r.v[K_COST_USD].type != V_ABSENT) {
        int in_cost = r.v[K_COST].type != V_ABSENT && r.v[K_COST].type != V_NULL;
        const Val *raw = in_cost ? &r.v[K_COST] : &r.v[K_COST_USD];
        if (!cost_of(raw, in_cost && c->cents, &cost, &exponent)) return BAIL;
    } else {
        int failed = 0;
        tier = tier_of(c, &r, &failed);
        if (failed) return FAILED;
    }
    const Val *api_key = NULL;
    if (c->group_api_key) {
        const Val *kv = &r.v[K_API_KEY];
        if (kv->type == V_STR) api_key = kv;
        else if (kv->type != V_ABSENT && kv->type != V_NULL) return BAIL;
    }
    int known = model_ok(models, model);
    if (known < 0) return FAILED;
    if (!known) return BAIL;

    Group *g = group_for(groups, day, tier, model, c->group_project ? project : NULL, api_key,
                         index, s, n);
    if (!g) { PyErr_NoMemory(); return FAILED; }
    g->sums[0] += inp->i;
    g->sums[1] += cached->i;
    g->sums[2] += out->i;
    g->sums[3] += 1;
    if (!tier) {
        g->cost += cost;
        if (exponent < g->exponent) g->exponent = exponent;
    }
    if (c->dedupe || total->type == V_INT) {
        Day *d = day_for(days, day);
        if (!d) { PyErr_NoMemory(); return FAILED; }
        const Val *rid = &r.v[K_REQUEST_ID];
        if (c->dedupe && rid->type == V_STR && rid->n > 0) {
            /* fingerprint(): the id's bytes as a big-endian number modulo 2**61 - 1, a byte at
             * a time; 2**61 = 1 modulo it, so h * 256 = (low 53 bits of h) << 8 + (h >> 53). */
            uint64_t h = 0;
            for (Py_ssize_t i = 0; i < rid->n; i++) {
                h = ((h & ((1ULL << 53) - 1)) << 8) + (h >> 53) + (unsigned char)rid->s[i];
                if (h >= P61) h -= P61;
            }
            if (!day_print(d, (int64_t)h)) { PyErr_NoMemory(); return FAILED; }
        }
        if (total->type == V_INT && total->i != inp->i + out->i) d->notes++;
    }
    return COUNTED;
}

/* -- the module ------------------------------------------------------------------------------- */

static PyObject *opt_str(const char *s, Py_ssize_t n) {
    if (n < 0) Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(s, n);
}

static PyObject *build_groups(Groups *g) {
    PyObject *list = PyList_New((Py_ssize_t)g->count);
    if (!list) return NULL;
    for (size_t i = 0; i < g->count; i++) {
        Group *s = &g->slots[g->order[i]];
        PyObject *units, *exp;
        if (s->tier) {
            units = Py_NewRef(Py_None);
            exp = PyLong_FromLong(0);
        } else {
            units = int128_to_py(s->cost);
            exp = PyLong_FromLong(s->exponent);
        }
        PyObject *item = Py_BuildValue(
            "(nLNNNOLLLLNN)", s->first, (long long)s->day, opt_str(s->model, s->model_n),
            opt_str(s->project, s->project_n), opt_str(s->api_key, s->api_key_n),
            s->tier ? s->tier : Py_None, (long long)s->sums[0], (long long)s->sums[1],
            (long long)s->sums[2], (long long)s->sums[3], units, exp);
        if (!item) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* The lines to scan: one block of them joined by newlines, read from ``pos`` on. */
typedef struct {
    const char *pos, *end;
    Py_ssize_t count;
} Source;

static void next_line(Source *src, const char **s, Py_ssize_t *n) {
    const char *nl = memchr(src->pos, '\n', (size_t)(src->end - src->pos));
    const char *stop = nl ? nl : src->end;
    *s = src->pos;
    *n = stop - src->pos;
    src->pos = nl ? nl + 1 : src->end;
}

static PyObject *dicts_of(Days *days, PyObject **notes_out) {
    PyObject *prints = PyDict_New(), *notes = PyDict_New();
    if (!prints || !notes) goto fail;
    for (size_t i = 0; i < days->n; i++) {
        Day *d = &days->days[i];
        PyObject *key = PyLong_FromLongLong(d->day), *v = NULL;
        if (!key) goto fail;
        int bad = 0;
        if (d->n) {
            v = PyBytes_FromStringAndSize((const char *)d->prints,
                                          (Py_ssize_t)(d->n * sizeof(int64_t)));
            bad = !v || PyDict_SetItem(prints, key, v) < 0;
            Py_XDECREF(v);
        }
        if (!bad && d->notes) {
            v = PyLong_FromSsize_t(d->notes);
            bad = !v || PyDict_SetItem(notes, key, v) < 0;
            Py_XDECREF(v);
        }
        Py_DECREF(key);
        if (bad) goto fail;
    }
    *notes_out = notes;
    return prints;
fail:
    Py_XDECREF(prints);
    Py_XDECREF(notes);
    return NULL;
}

static PyObject *run(Source *src, PyObject *cfg) {
    Config c;
    Models models = {0};
    long long start, end;
    if (!PyArg_ParseTuple(cfg, "LLppppO!ppO!O!UUU", &start, &end, &c.naive_is_utc,
                          &c.need_project, &c.group_project, &c.group_api_key,
                          &PyFrozenSet_Type, &c.filter, &c.dedupe, &c.cents,
                          &PyDict_Type, &models.families, &PyDict_Type, &c.tiers, &c.standard,
                          &c.batch, &models.completions))
        return NULL;
    c.start = start;
    c.end = end;
    Groups groups = {0};
    Days days = {0};
    PyObject *bailed = PyList_New(0), *bailed_lines = PyList_New(0), *result = NULL;
    Py_ssize_t outside = 0, counted = 0;
    if (!bailed || !bailed_lines) goto done;
    for (Py_ssize_t i = 0; i < src->count; i++) {
        const char *s;
        Py_ssize_t n;
        next_line(src, &s, &n);
        int status = count_line(&c, s, n, i, &groups, &days, &models);
        if (status == FAILED) goto done;
        if (status == COUNTED) counted++;
        else if (status == OUTSIDE) outside++;
        else {
            PyObject *at = PyLong_FromSsize_t(i);
            if (!at || PyList_Append(bailed, at) < 0) { Py_XDECREF(at); goto done; }
            Py_DECREF(at);
            PyObject *line = PyBytes_FromStringAndSize(s, n);
            if (!line || PyList_Append(bailed_lines, line) < 0) { Py_XDECREF(line); goto done; }
            Py_DECREF(line);
        }
    }
    PyObject *notes = NULL, *prints = dicts_of(&days, &notes);
    if (!prints) goto done;
    PyObject *built = build_groups(&groups);
    if (!built) { Py_DECREF(prints); Py_DECREF(notes); goto done; }
    PyObject *firsts = PyList_New((Py_ssize_t)groups.count);
    for (size_t i = 0; firsts && i < groups.count; i++) {
        Group *g = &groups.slots[groups.order[i]];
        PyObject *line = PyBytes_FromStringAndSize(g->first_s, g->first_n);
        if (!line) Py_CLEAR(firsts);
        else PyList_SET_ITEM(firsts, (Py_ssize_t)i, line);
    }
    if (!firsts) { Py_DECREF(built); Py_DECREF(prints); Py_DECREF(notes); goto done; }
    result = Py_BuildValue("(NOOnnNNN)", built, bailed, bailed_lines, outside, counted, prints,
                           notes, firsts);
done:
    Py_XDECREF(bailed);
    Py_XDECREF(bailed_lines);
    groups_free(&groups);
    days_free(&days);
    models_free(&models);
    return result;
}

/* scan_block(block, count, config): the ``count`` lines ``block`` holds joined by newlines
 * (files.read_blocks), scanned without a bytes object per line: returns (groups, bailed,
 * bailed_lines, outside, counted, prints, notes, group_lines), bailed_lines the lines handed
 * back and group_lines the line that made each group. */
static PyObject *scan_block(PyObject *self, PyObject *args) {
    const char *block;
    Py_ssize_t size, count;
    PyObject *cfg;
    if (!PyArg_ParseTuple(args, "y#nO!", &block, &size, &count, &PyTuple_Type, &cfg)) return NULL;
    Source src = {block, block + size, count};
    return run(&src, cfg);
}

static int compare_prints(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* repeats(buffers) -> list[int]: the int64 values (native order) found more than once in the
 * buffers together, each once, ascending. One day's request-id fingerprints: sorted, a repeat
 * is a run; memory is one copy of them. */
static PyObject *repeats(PyObject *self, PyObject *args) {
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "O", &seq)) return NULL;
    PyObject *items = PySequence_Fast(seq, "repeats() takes a sequence of buffers");
    if (!items) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items), total = 0;
    PyObject *result = NULL;
    int64_t *all = NULL;
    Py_buffer view;
    for (int pass = 0; pass < 2; pass++) {
        Py_ssize_t at = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(items, i), &view, PyBUF_SIMPLE) < 0)
                goto done;
            Py_ssize_t count = view.len / (Py_ssize_t)sizeof(int64_t);
            if (pass == 0) total += count;
            else memcpy(all + at, view.buf, (size_t)count * sizeof(int64_t));
            at += count;
            PyBuffer_Release(&view);
        }
        if (pass == 0) {
            all = PyMem_Malloc((size_t)(total ? total : 1) * sizeof(int64_t));
            if (!all) { PyErr_NoMemory(); goto done; }
        }
    }
    qsort(all, (size_t)total, sizeof(int64_t), compare_prints);
    result = PyList_New(0);
    if (!result) goto done;
    for (Py_ssize_t i = 1; i < total; i++) {
        if (all[i] == all[i - 1] && (i < 2 || all[i - 1] != all[i - 2])) {
            PyObject *v = PyLong_FromLongLong(all[i]);
            if (!v || PyList_Append(result, v) < 0) {
                Py_XDECREF(v);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(v);
        }
    }
done:
    PyMem_Free(all);
    Py_DECREF(items);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_block", scan_block, METH_VARARGS,
     "Count the plain completion records of lines joined by newlines."},
    {"repeats", repeats, METH_VARARGS, "The values found more than once in int64 buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastscan", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastscan(void) {
    for (int c = 0; c < 0x20; c++) stops[c] = 1;
    stops['"'] = stops['\\'] = 1;
    return PyModule_Create(&module);
}
