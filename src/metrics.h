/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prometheus exposition: a text format writer (label values escaped, invalid
 * UTF-8 replaced) and an HTTP endpoint served by libmicrohttpd inside the
 * caller's epoll loop (no thread of its own: a multithreaded forkhazard would
 * itself fork while multithreaded). What is said is exposition.c's; the
 * textfile is replaced atomically by outfile.c.
 */
#ifndef FH_METRICS_H
#define FH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "strbuf.h"

#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

/* Exposition text being written (out.oom: it ran out of memory). */
struct prom {
	struct strbuf out;
};

void prom_init(struct prom *p);
void prom_free(struct prom *p);
/* "# HELP" and "# TYPE" lines; type: "counter" or "gauge". */
void prom_family(struct prom *p, const char *name, const char *type, const char *help);
/*
 * One sample: name{k1="v1",...} value. labels: nlabels pairs {key, value};
 * values are untrusted bytes: \, " and newline are escaped, other control
 * bytes and invalid UTF-8 become U+FFFD.
 */
void prom_sample(struct prom *p, const char *name, const char *const labels[][2], int nlabels,
		 double value);
void prom_sample_u64(struct prom *p, const char *name, const char *const labels[][2],
		     int nlabels, uint64_t value);
/* A label value escaped into out (NUL-terminated, truncated on a character). */
void prom_escape_label(const char *s, char *out, size_t size);

struct metrics_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool loopback;
};

/* "127.0.0.1:9477", "[::1]:9477", "0.0.0.0:9477", "localhost:9477". 0 or -EINVAL. */
int metrics_parse_listen(const char *s, struct metrics_addr *a);

/* Renders the whole exposition into p; called once per scrape. */
typedef void (*metrics_render_fn)(void *ctx, struct prom *p);

struct metrics_http;

/* Listen on addr. NULL on error, with errno set. */
struct metrics_http *metrics_http_new(const struct metrics_addr *addr, metrics_render_fn render,
				      void *ctx);
void metrics_http_free(struct metrics_http *h);
/* A file descriptor for the caller's epoll: readable when there is work. */
int metrics_http_fd(const struct metrics_http *h);
/* Do what can be done without blocking (accept, read, answer, time out). */
void metrics_http_run(struct metrics_http *h);
uint64_t metrics_http_requests(const struct metrics_http *h);

#endif
