// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <microhttpd.h>
#include "escape.h"
#include "log.h"
#include "metrics.h"

/* ---- the text format ---------------------------------------------------- */

void prom_init(struct prom *p)
{
	strbuf_init(&p->out);
}

void prom_free(struct prom *p)
{
	strbuf_free(&p->out);
}

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
	strbuf_printf(&p->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_escape_label(const char *s, char *out, size_t size)
{
	static const char replacement[] = "\xef\xbf\xbd";	/* U+FFFD */
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;

	if (!size)
		return;
	for (size_t i = 0; i < n;) {
		char esc[4];
		const char *piece = esc;
		size_t plen, clen;
		uint32_t cp;

		clen = utf8_valid_len(u + i, n - i, &cp);
		if (!clen) {
			piece = replacement, plen = 3, clen = 1;
		} else if (cp == '\\' || cp == '"') {
			esc[0] = '\\', esc[1] = (char)cp, plen = 2;
		} else if (cp == '\n') {
			esc[0] = '\\', esc[1] = 'n', plen = 2;
		} else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
			piece = replacement, plen = 3;
		} else {
			piece = s + i, plen = clen;
		}
		if (o + plen >= size)
			break;
		memcpy(out + o, piece, plen);
		o += plen;
		i += clen;
	}
	out[o] = '\0';
}

/* name{labels} value: value already formatted */
static void sample(struct prom *p, const char *name, const char *const labels[][2], int nlabels,
		   const char *value)
{
	char esc[1024];

	strbuf_puts(&p->out, name);
	for (int i = 0; i < nlabels; i++) {
		prom_escape_label(labels[i][1] ? labels[i][1] : "", esc, sizeof(esc));
		strbuf_printf(&p->out, "%s%s=\"", i ? "," : "{", labels[i][0]);
		strbuf_puts(&p->out, esc);
		strbuf_puts(&p->out, "\"");
	}
	strbuf_printf(&p->out, "%s %s\n", nlabels ? "}" : "", value);
}

void prom_sample(struct prom *p, const char *name, const char *const labels[][2], int nlabels,
		 double value)
{
	char v[32];

	snprintf(v, sizeof(v), "%.17g", value);
	/* the text format's own spelling of these */
	sample(p, name, labels, nlabels, isnan(value) ? "NaN" : !isinf(value) ? v :
	       value > 0 ? "+Inf" : "-Inf");
}

void prom_sample_u64(struct prom *p, const char *name, const char *const labels[][2],
		     int nlabels, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	sample(p, name, labels, nlabels, v);
}

/* ---- where ----------------------------------------------------------------- */

int metrics_parse_listen(const char *s, struct metrics_addr *a)
{
	char host[64];
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	long port;

	memset(a, 0, sizeof(*a));
	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (!hlen || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return -EINVAL;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (s[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;

		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -EINVAL;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		a->len = sizeof(*in);
		a->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*in6);
		a->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

/* ---- the endpoint ------------------------------------------------------------ */

struct metrics_http {
	struct MHD_Daemon *d;
	int fd;
	metrics_render_fn render;
	void *ctx;
	uint64_t requests;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned int status,
			      const char *type, char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned int status,
				   const char *text)
{
	char *body = strdup(text);

	if (!body)
		return MHD_NO;
	return answer(conn, status, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct metrics_http *h = cls;
	struct prom p;

	(void)version;
	(void)upload;
	if (!*req_cls) {	/* the headers only, so far */
		*req_cls = h;
		return MHD_YES;
	}
	if (*upload_size)
		return answer_text(conn, MHD_HTTP_BAD_REQUEST, "no request body here\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n");
	if (strcmp(url, "/metrics"))
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "forkhazard: see /metrics\n");
	h->requests++;
	prom_init(&p);
	h->render(h->ctx, &p);
	if (p.out.oom || !p.out.buf) {
		prom_free(&p);
		return answer_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	return answer(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, p.out.buf, p.out.len);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("metrics endpoint: %s", buf);
}

struct metrics_http *metrics_http_new(const struct metrics_addr *addr, metrics_render_fn render,
				      void *ctx)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	const union MHD_DaemonInfo *info;
	unsigned int flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	uint16_t port;

	if (!h)
		return NULL;
	h->render = render;
	h->ctx = ctx;
	if (addr->ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
	} else {
		port = ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
	}
	/* Bounded: 16 connections, 5 s each, 32 KiB of memory each. */
	h->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, h,
				MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr->ss,
				MHD_OPTION_CONNECTION_LIMIT, 16u,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, 8u,
				MHD_OPTION_CONNECTION_TIMEOUT, 5u,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_END);
	if (!h->d) {
		int e = errno ? errno : EADDRINUSE;

		free(h);
		errno = e;
		return NULL;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		metrics_http_free(h);
		errno = ENOTSUP;
		return NULL;
	}
	h->fd = info->epoll_fd;
	return h;
}

void metrics_http_free(struct metrics_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h);
}

int metrics_http_fd(const struct metrics_http *h)
{
	return h->fd;
}

void metrics_http_run(struct metrics_http *h)
{
	MHD_run(h->d);
}

uint64_t metrics_http_requests(const struct metrics_http *h)
{
	return h->requests;
}
