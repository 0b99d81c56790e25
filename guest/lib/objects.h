/* What the drivers that run a user's object (check_progs, check_policy) share: their JSON
 * kept in memory until exit (a set-up failure leaves only its own {"error": ...}), and
 * libbpf's words kept for a refused load or attach, printed as the observation. */
#ifndef KREGRESS_OBJECTS_H
#define KREGRESS_OBJECTS_H

#include <stdarg.h>
#include <bpf/libbpf.h>

void buffer_output(void);
int keep_libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap);
void libbpf_log_reset(void);
/* The verifier's reason for a refused load: the log's last line before its statistics. */
void verifier_verdict(char *out, size_t len);
/* {"refused": {stage, program, errno, strerror, libbpf_log}}, the JSON closed, exit 0 */
void program_refused(const char *stage, const char *prog, int err);
/* One entry of the "programs" array: name, section, whether this driver checks it. */
void list_program(struct bpf_program *prog, int checked);
/* kernel.bpf_stats_enabled on (run_cnt counts only then, v5.1): 0 or the errno */
int enable_run_counts(void);
/* A loaded program's run count (bpf_prog_info.run_cnt), -1 if the kernel does not say */
long long run_count(struct bpf_program *prog);
/* maps.c: MAPS_FILE ("-": none) lines "MAP KEY VALUE" into the loaded objects' maps (the first
 * object that has the map); a bad line fails naming it. "shared:FILE": one file given for several
 * objects checked one by one, so a map this object lacks is another's, not an error. */
void fill_maps(struct bpf_object **objs, int nr_objs, const char *path);

#endif
