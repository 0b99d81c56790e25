/* What the drivers that run a user's object (check_progs, check_policy) share: their JSON
 * kept in memory until exit (a set-up failure leaves only its own {"error": ...}), and
 * libbpf's words kept for a refused load or attach, printed as the observation. */
#ifndef KREGRESS_OBJECTS_H
#define KREGRESS_OBJECTS_H

#include <stdarg.h>
#include <bpf/libbpf.h>

void buffer_output(void);
int keep_libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap);
/* {"refused": {stage, program, errno, strerror, libbpf_log}}, the JSON closed, exit 0 */
void program_refused(const char *stage, const char *prog, int err);
/* maps.c: MAPS_FILE ("-": none) lines "MAP KEY VALUE" into the loaded object's maps; a bad
 * line fails naming it */
void fill_maps(struct bpf_object *obj, const char *path);

#endif
