/* json.h: the one JSON writer of a driver. */
#include <stdio.h>

#include "json.h"

int json_need_comma;

void json_open(void) { printf("{"); json_need_comma = 0; }
void json_close(void) { printf("}\n"); fflush(stdout); }

void json_key(const char *key)
{
	printf("%s\"%s\": ", json_need_comma ? ", " : "", key);
	json_need_comma = 1;
}

void json_str(const char *key, const char *value)
{
	json_key(key);
	putchar('"');
	for (const char *p = value; p && *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

void json_int(const char *key, long long value) { json_key(key); printf("%lld", value); }
void json_bool(const char *key, int value) { json_key(key); printf(value ? "true" : "false"); }
void json_obj_open(const char *key) { json_key(key); printf("{"); json_need_comma = 0; }
void json_obj_close(void) { printf("}"); json_need_comma = 1; }
void json_arr_open(const char *key) { json_key(key); printf("["); json_need_comma = 0; }
void json_elem_obj_open(void) { printf("%s{", json_need_comma ? ", " : ""); json_need_comma = 0; }
void json_arr_close(void) { printf("]"); json_need_comma = 1; }
