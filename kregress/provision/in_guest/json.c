/* The agent's JSON: parsing the host's requests, writing strings into replies. */
#include "agent.h"

void skip_space(struct parser *p)
{
	while (p->at < p->end && strchr(" \t\r\n", *p->at) && *p->at)
		p->at++;
}

int parse_fail(struct parser *p, const char *why)
{
	if (!p->error)
		p->error = why;
	return -1;
}

static void put_utf8(struct buf *b, unsigned cp)
{
	char out[4];
	size_t n;
	if (cp < 0x80) {
		out[0] = cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = 0xc0 | cp >> 6;
		out[1] = 0x80 | (cp & 0x3f);
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = 0xe0 | cp >> 12;
		out[1] = 0x80 | (cp >> 6 & 0x3f);
		out[2] = 0x80 | (cp & 0x3f);
		n = 3;
	} else {
		out[0] = 0xf0 | cp >> 18;
		out[1] = 0x80 | (cp >> 12 & 0x3f);
		out[2] = 0x80 | (cp >> 6 & 0x3f);
		out[3] = 0x80 | (cp & 0x3f);
		n = 4;
	}
	buf_add(b, out, n);
}

static int hex4(struct parser *p, unsigned *out)
{
	if (p->end - p->at < 4)
		return parse_fail(p, "short \\u escape");
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = *p->at++;
		*out <<= 4;
		if (c >= '0' && c <= '9')
			*out |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*out |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*out |= c - 'A' + 10;
		else
			return parse_fail(p, "bad \\u escape");
	}
	return 0;
}

static int parse_string(struct parser *p, char **out)
{
	struct buf b = {0};
	p->at++;    /* the opening quote */
	buf_add(&b, "", 0);
	while (p->at < p->end && *p->at != '"') {
		char c = *p->at++;
		if (c != '\\') {
			buf_add(&b, &c, 1);
			continue;
		}
		if (p->at >= p->end)
			break;
		c = *p->at++;
		const char *plain = strchr("\"\\/bfnrt", c);
		if (plain && c) {
			buf_add(&b, &"\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"], 1);
		} else if (c == 'u') {
			unsigned cp, low;
			if (hex4(p, &cp))
				break;
			if (cp >= 0xd800 && cp < 0xdc00 && p->end - p->at >= 6 && p->at[0] == '\\' &&
			    p->at[1] == 'u') {
				p->at += 2;
				if (hex4(p, &low))
					break;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
			}
			put_utf8(&b, cp);
		} else {
			parse_fail(p, "bad escape in a string");
			break;
		}
	}
	if (p->error || p->at >= p->end) {
		free(b.data);
		return parse_fail(p, "unterminated string");
	}
	p->at++;
	*out = b.data;
	return 0;
}

int parse_value(struct parser *p, struct json *v, int depth)
{
	memset(v, 0, sizeof(*v));
	skip_space(p);
	if (depth > 32)
		return parse_fail(p, "nested too deeply");
	if (p->at >= p->end)
		return parse_fail(p, "unexpected end");
	char c = *p->at;
	if (c == '"') {
		v->type = J_STR;
		return parse_string(p, &v->str);
	}
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		v->type = c == '{' ? J_OBJ : J_ARR;
		p->at++;
		skip_space(p);
		if (p->at < p->end && *p->at == close) {
			p->at++;
			return 0;
		}
		for (;;) {
			v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
			if (v->type == J_OBJ)
				v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
			if (!v->items || (v->type == J_OBJ && !v->keys))
				return parse_fail(p, "out of memory");
			memset(&v->items[v->n], 0, sizeof(*v->items));
			if (v->type == J_OBJ) {
				v->keys[v->n] = NULL;
				skip_space(p);
				if (p->at >= p->end || *p->at != '"')
					return v->n++, parse_fail(p, "expected a key");
				if (parse_string(p, &v->keys[v->n]))
					return v->n++, -1;
				skip_space(p);
				if (p->at >= p->end || *p->at != ':')
					return v->n++, parse_fail(p, "expected ':'");
				p->at++;
			}
			if (parse_value(p, &v->items[v->n++], depth + 1))
				return -1;
			skip_space(p);
			if (p->at < p->end && *p->at == close) {
				p->at++;
				return 0;
			}
			if (p->at >= p->end || *p->at != ',')
				return parse_fail(p, v->type == J_OBJ ? "expected ',' or '}'" : "expected ',' or ']'");
			p->at++;
		}
	}
	static const struct { const char *word; enum jtype type; double num; } words[] = {
		{"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t len = strlen(words[i].word);
		if ((size_t)(p->end - p->at) >= len && !memcmp(p->at, words[i].word, len)) {
			v->type = words[i].type;
			v->num = words[i].num;
			p->at += len;
			return 0;
		}
	}
	char number[64];
	size_t len = 0;
	while (p->at + len < p->end && strchr("+-0123456789.eE", p->at[len]) && p->at[len] &&
	       len < sizeof(number) - 1)
		len++;
	if (!len)
		return parse_fail(p, "unexpected character");
	memcpy(number, p->at, len);
	number[len] = 0;
	char *rest;
	v->type = J_NUM;
	v->num = strtod(number, &rest);
	if (*rest)
		return parse_fail(p, "bad number");
	p->at += len;
	return 0;
}

void json_free(struct json *v)
{
	for (size_t i = 0; i < v->n; i++) {
		json_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

const struct json *member(const struct json *object, const char *key)
{
	for (size_t i = 0; object->type == J_OBJ && i < object->n; i++)
		if (object->keys[i] && !strcmp(object->keys[i], key))
			return &object->items[i];
	return NULL;
}

/* A JSON string of arbitrary bytes: ASCII only, invalid UTF-8 becomes U+FFFD. */
void put_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	buf_str(out, "\"");
	for (size_t i = 0; i < len;) {
		unsigned c = u[i], cp, need;
		if (c < 0x80) {
			i++;
			if (c == '"' || c == '\\')
				buf_printf(out, "\\%c", c);
			else if (c == '\n')
				buf_str(out, "\\n");
			else if (c == '\t')
				buf_str(out, "\\t");
			else if (c < 0x20 || c == 0x7f)
				buf_printf(out, "\\u%04x", c);
			else {
				unsigned char byte = c;     /* not &c: c's first byte is 0 on a big-endian guest */
				buf_add(out, &byte, 1);
			}
			continue;
		}
		need = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
		need = c >= 0xf5 ? 0 : need;
		cp = need == 3 ? c & 0x07 : need == 2 ? c & 0x0f : c & 0x1f;
		size_t j = 1;
		for (; need && j <= need && i + j < len && (u[i + j] & 0xc0) == 0x80; j++)
			cp = cp << 6 | (u[i + j] & 0x3f);
		int valid = need && j == need + 1 && !(need == 2 && cp < 0x800) && !(need == 3 && cp < 0x10000) &&
			    cp < 0x110000 && !(cp >= 0xd800 && cp < 0xe000);
		if (!valid) {
			buf_str(out, "\\ufffd");
			i++;
			continue;
		}
		i += j;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			buf_printf(out, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		} else {
			buf_printf(out, "\\u%04x", cp);
		}
	}
	buf_str(out, "\"");
}

