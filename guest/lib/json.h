/* The drivers' JSON output: one flat-or-nested object on stdout, written as we go. One
 * writer (lib/json.c) for every file of a driver, so the commas follow the whole object. */
#ifndef KREGRESS_JSON_H
#define KREGRESS_JSON_H

/* 1 when the next key or element needs a comma before it */
extern int json_need_comma;

void json_open(void);
void json_close(void);
void json_key(const char *key);
void json_str(const char *key, const char *value);
void json_int(const char *key, long long value);
void json_bool(const char *key, int value);
/* A nested object: json_obj_open("x"); json_int(...); json_obj_close(); */
void json_obj_open(const char *key);
void json_obj_close(void);
/* An array of objects: json_arr_open("x"); { json_elem_obj_open(); ...; json_obj_close(); } json_arr_close(); */
void json_arr_open(const char *key);
void json_elem_obj_open(void);
void json_arr_close(void);

#endif
