/*
 * smtpload: an SMTP load generator for bench/run.sh and the durability tests.
 *
 * N connections, one thread each, blocking sockets with timeouts. Each
 * connection greets (EHLO, optional STARTTLS and EHLO again, optional AUTH
 * PLAIN), then takes message sequence numbers from a shared counter and
 * sends each as MAIL/RCPT/DATA (pipelined when the server offers
 * PIPELINING), and ends with QUIT. Every reply code is checked.
 *
 * A message is a pure function of (sequence number, size, tag): the same
 * bytes can be recomputed with --print, so a checker can byte-compare what
 * the server stored. --ack-log records every acknowledged message as
 * "<seq> <queue-id or -> <sha256 of the message as sent, unstuffed>",
 * flushed at once, so a test that kills the server knows exactly what was
 * acknowledged.
 *
 * --idle opens N connections, reads each greeting, reports, and holds them
 * open until SIGINT/SIGTERM or --hold seconds.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define RBUF_SIZE 16384           /* buffered reply reader */
#define LINE_MAX_LEN 2048         /* longest reply line accepted */
#define MAX_ERROR_LINES 50        /* detail lines printed before going quiet */
#define ENVELOPE_FROM "load@smtpload.invalid"
#define ENVELOPE_TO "sink@smtpload.invalid"
#define BODY_LINE 78              /* printable characters per body line */

/* ---------------------------------------------------------------- options */

struct options {
	const char *host;
	const char *port;
	long connections;
	long messages;
	size_t size;
	const char *user, *pass;
	bool starttls;
	const char *ack_log;
	bool quiet;
	bool pipelining;          /* use PIPELINING when the server offers it */
	long timeout;             /* seconds per reply / per write */
	const char *tag;          /* part of every Message-ID */
	long first_seq;
	bool idle;
	long hold;                /* --idle: seconds to hold, 0 = until a signal */
	long print_seq;           /* --print: write message SEQ to stdout */
};

static struct options opt = {
	.host = "127.0.0.1",
	.port = NULL,
	.connections = 1,
	.messages = 1,
	.size = 2048,
	.pipelining = true,
	.timeout = 30,
	.first_seq = 1,
	.print_seq = -1,
};

/* ------------------------------------------------------------ shared state */

static SSL_CTX *ssl_ctx;
static FILE *ack_file;
static pthread_mutex_t ack_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long next_seq;      /* offset of the next message to send */
static atomic_long acked;
static atomic_int errors;
static atomic_bool abort_run;     /* an error happened: stop taking messages */
static int error_lines;
static uint64_t *latency_ns;      /* per message offset; 0 = not acknowledged */
static size_t message_bytes;      /* actual size of every message */
static volatile sig_atomic_t stop_idle;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("smtpload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ---------------------------------------------------------------- message */

/* splitmix64: a small, well-mixed generator; the body is a function of seq. */
static uint64_t mix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* 64 printable characters; '.' makes some lines need dot-stuffing. */
static const char body_chars[65] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .";

static int message_headers(char *dst, size_t cap, long seq, bool pad)
{
	return snprintf(dst, cap,
	    "Message-ID: <%ld.%s@smtpload.invalid>\r\n"
	    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
	    "From: smtpload <" ENVELOPE_FROM ">\r\n"
	    "To: sink <" ENVELOPE_TO ">\r\n"
	    "Subject: smtpload message %ld%s\r\n"
	    "X-Smtpload-Seq: %ld\r\n"
	    "\r\n",
	    seq, opt.tag, seq, pad ? "." : "", seq);
}

/* The exact size of every message for the given options: `size`, or the
 * headers alone when they are longer. Sequence numbers with more digits
 * make longer headers, so this is computed for the largest one. */
static size_t message_size_for(long last_seq)
{
	char hdr[1024];
	int h = message_headers(hdr, sizeof hdr, last_seq, false);
	if (h < 0 || (size_t)h >= sizeof hdr)
		die("tag too long");
	if (opt.size < (size_t)h)
		return (size_t)h + 1;   /* pad: one more byte than the headers */
	return opt.size;
}

/*
 * Writes message seq of exactly `size` bytes into dst (which holds at least
 * size bytes): headers, then body lines of at most 78 printable characters,
 * every line ended by CRLF. Returns size. The headers, padded with one byte
 * in the Subject where needed, must fit: size >= headers + 1.
 */
static size_t message_build(char *dst, size_t size, long seq)
{
	char hdr[1024];
	int h = message_headers(hdr, sizeof hdr, seq, false);
	size_t rest;
	if (h < 0 || (size_t)h >= sizeof hdr)
		die("tag too long");
	/* A remainder of 1 cannot be a CRLF line: pad the Subject instead. */
	if (size < (size_t)h || size - (size_t)h == 1)
		h = message_headers(hdr, sizeof hdr, seq, true);
	if (size < (size_t)h)
		die("message size %zu is below the header size %d", size, h);
	memcpy(dst, hdr, (size_t)h);
	char *p = dst + h;
	rest = size - (size_t)h;
	uint64_t state = (uint64_t)seq * 0x2545f4914f6cdd1du ^ 0x736d74706c6f6164u;
	uint64_t r = 0;
	int bits = 0;
	while (rest > 0) {
		size_t len = rest > BODY_LINE + 2 ? BODY_LINE + 2 : rest;
		if (rest - len == 1)
			len--;          /* leave 2 for a last, empty line */
		for (size_t i = 0; i < len - 2; i++) {
			if (bits < 6) {
				r = mix64(&state);
				bits = 64;
			}
			*p++ = body_chars[r & 63];
			r >>= 6;
			bits -= 6;
		}
		*p++ = '\r';
		*p++ = '\n';
		rest -= len;
	}
	return size;
}

/* Dot-stuffs msg (which ends with CRLF) into dst and appends ".\r\n".
 * dst holds at least len + len / 2 + 8 bytes. Returns the payload length. */
static size_t payload_build(char *dst, const char *msg, size_t len)
{
	char *p = dst;
	bool line_start = true;
	for (size_t i = 0; i < len; ) {
		if (line_start && msg[i] == '.')
			*p++ = '.';
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (msg + i)) + 1 : len - i;
		memcpy(p, msg + i, n);
		p += n;
		i += n;
		line_start = nl != NULL;
	}
	memcpy(p, ".\r\n", 3);
	return (size_t)(p - dst) + 3;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		die("EVP_Digest failed");
	for (unsigned int i = 0; i < mdlen && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* ------------------------------------------------------------- connection */

enum { EXT_PIPELINING = 1, EXT_STARTTLS = 2 };

struct conn {
	int id;
	int fd;
	SSL *ssl;
	const char *step;         /* protocol step, for error reports */
	long seq;                 /* message in progress, -1 if none */
	char rbuf[RBUF_SIZE];
	size_t rpos, rlen;
	char line[LINE_MAX_LEN + 1];  /* last reply line, without CRLF */
	unsigned ext;             /* EXT_* seen in the last reply */
	char *msg, *out;          /* message and stuffed payload buffers */
	size_t out_cap;
	uint64_t quit_ns;         /* time of the QUIT reply, 0 if none */
	bool pipelining;          /* MAIL, RCPT and DATA in one write */
	bool failed;
};

static void conn_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(struct conn *c, const char *fmt, ...)
{
	char msg[LINE_MAX_LEN + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->failed = true;
	atomic_fetch_add(&errors, 1);
	atomic_store(&abort_run, true);
	pthread_mutex_lock(&err_lock);
	if (error_lines < MAX_ERROR_LINES) {
		if (c->seq >= 0)
			fprintf(stderr, "smtpload: connection %d, step %s, seq %ld: %s\n",
			    c->id, c->step, c->seq, msg);
		else
			fprintf(stderr, "smtpload: connection %d, step %s: %s\n",
			    c->id, c->step, msg);
	} else if (error_lines == MAX_ERROR_LINES) {
		fprintf(stderr, "smtpload: further errors not shown\n");
	}
	error_lines++;
	pthread_mutex_unlock(&err_lock);
}

static const char *ssl_error_text(void)
{
	unsigned long e = ERR_get_error();
	return e ? ERR_reason_error_string(e) : "no OpenSSL error";
}

static bool conn_connect(struct conn *c)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (rc != 0) {
		conn_error(c, "cannot resolve %s:%s: %s", opt.host, opt.port, gai_strerror(rc));
		return false;
	}
	struct timeval tv = { .tv_sec = opt.timeout };
	int one = 1, saved = 0;
	c->fd = -1;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			c->fd = fd;
			break;
		}
		saved = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		conn_error(c, "connect to %s:%s: %s", opt.host, opt.port, strerror(saved));
		return false;
	}
	return true;
}

static struct conn *conn_new(int id)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		die("out of memory");
	c->id = id;
	c->fd = -1;
	c->seq = -1;
	c->step = "connect";
	return c;
}

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Reads into the reply buffer. Returns false (and reports) on EOF/error. */
static bool conn_fill(struct conn *c)
{
	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
	else if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	size_t room = sizeof c->rbuf - c->rlen;
	for (;;) {
		ssize_t n;
		if (c->ssl) {
			int k = SSL_read(c->ssl, c->rbuf + c->rlen, room > INT_MAX ? INT_MAX : (int)room);
			if (k > 0) {
				c->rlen += (size_t)k;
				return true;
			}
			int e = SSL_get_error(c->ssl, k);
			if (e == SSL_ERROR_ZERO_RETURN)
				conn_error(c, "connection closed by the server (TLS)");
			else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ)
				conn_error(c, "TLS read: %s", errno == EAGAIN || errno == EWOULDBLOCK
				    ? "timed out" : errno ? strerror(errno) : "connection closed");
			else
				conn_error(c, "TLS read: %s", ssl_error_text());
			return false;
		}
		n = recv(c->fd, c->rbuf + c->rlen, room, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			return true;
		}
		if (n == 0) {
			conn_error(c, "connection closed by the server");
			return false;
		}
		if (errno == EINTR)
			continue;
		conn_error(c, "read: %s", errno == EAGAIN || errno == EWOULDBLOCK
		    ? "timed out waiting for a reply" : strerror(errno));
		return false;
	}
}

/* Reads one line (CRLF or LF ended) into c->line. */
static bool conn_read_line(struct conn *c)
{
	for (;;) {
		char *start = c->rbuf + c->rpos;
		char *nl = memchr(start, '\n', c->rlen - c->rpos);
		if (nl) {
			size_t n = (size_t)(nl - start);
			c->rpos += n + 1;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (n > LINE_MAX_LEN) {
				conn_error(c, "reply line longer than %d bytes", LINE_MAX_LEN);
				return false;
			}
			memcpy(c->line, start, n);
			c->line[n] = '\0';
			return true;
		}
		if (c->rlen - c->rpos > LINE_MAX_LEN + 2) {
			conn_error(c, "reply line longer than %d bytes", LINE_MAX_LEN);
			return false;
		}
		if (!conn_fill(c))
			return false;
	}
}

/*
 * Reads one reply (all its lines) and checks its code. c->line keeps the
 * last line; c->ext the EHLO keywords seen. Returns false (and reports the
 * reply) if it is not `want`.
 */
static bool conn_expect(struct conn *c, int want, const char *step)
{
	int code = -1;
	c->step = step;
	c->ext = 0;
	for (bool first = true;; first = false) {
		if (!conn_read_line(c))
			return false;
		const char *l = c->line;
		size_t n = strlen(l);
		if (n < 3 || l[0] < '1' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
		    l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
			conn_error(c, "malformed reply line: \"%s\"", l);
			return false;
		}
		int k = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (!first && k != code) {
			conn_error(c, "reply code changes within a reply: \"%s\"", l);
			return false;
		}
		code = k;
		if (n > 4) {
			const char *kw = l + 4;
			if (strncasecmp(kw, "PIPELINING", 10) == 0 && (kw[10] == '\0' || kw[10] == ' '))
				c->ext |= EXT_PIPELINING;
			else if (strncasecmp(kw, "STARTTLS", 8) == 0 && (kw[8] == '\0' || kw[8] == ' '))
				c->ext |= EXT_STARTTLS;
		}
		if (n == 3 || l[3] == ' ')
			break;
	}
	if (code != want) {
		conn_error(c, "expected %d, got \"%s\"", want, c->line);
		return false;
	}
	return true;
}

static bool conn_write(struct conn *c, const char *buf, size_t len)
{
	while (len > 0) {
		if (c->ssl) {
			int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
			int k = SSL_write(c->ssl, buf, chunk);
			if (k <= 0) {
				int e = SSL_get_error(c->ssl, k);
				if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_WRITE)
					conn_error(c, "TLS write: %s", errno == EAGAIN || errno == EWOULDBLOCK
					    ? "timed out" : errno ? strerror(errno) : "connection closed");
				else
					conn_error(c, "TLS write: %s", ssl_error_text());
				return false;
			}
			buf += k;
			len -= (size_t)k;
			continue;
		}
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			conn_error(c, "write: %s", errno == EAGAIN || errno == EWOULDBLOCK
			    ? "timed out (the server does not read)" : strerror(errno));
			return false;
		}
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static bool conn_command(struct conn *c, const char *cmd, int want, const char *step)
{
	c->step = step;
	return conn_write(c, cmd, strlen(cmd)) && conn_expect(c, want, step);
}

static bool conn_starttls(struct conn *c)
{
	if (!(c->ext & EXT_STARTTLS)) {
		c->step = "starttls";
		conn_error(c, "the server does not offer STARTTLS");
		return false;
	}
	if (!conn_command(c, "STARTTLS\r\n", 220, "starttls"))
		return false;
	if (c->rpos != c->rlen) {
		conn_error(c, "data after the STARTTLS reply (response injection?)");
		return false;
	}
	c->step = "tls-handshake";
	c->ssl = SSL_new(ssl_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		conn_error(c, "SSL_new: %s", ssl_error_text());
		return false;
	}
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	if (SSL_connect(c->ssl) != 1) {
		conn_error(c, "TLS handshake: %s", ssl_error_text());
		return false;
	}
	return conn_command(c, "EHLO smtpload.invalid\r\n", 250, "ehlo-after-starttls");
}

static bool conn_auth(struct conn *c)
{
	size_t ul = strlen(opt.user), pl = strlen(opt.pass);
	size_t rawlen = ul + pl + 2;
	unsigned char *raw = xmalloc(rawlen);
	raw[0] = '\0';
	memcpy(raw + 1, opt.user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, opt.pass, pl);
	size_t cap = 4 * ((rawlen + 2) / 3) + 1;
	char *cmd = xmalloc(cap + 16);
	memcpy(cmd, "AUTH PLAIN ", 11);
	int enc = EVP_EncodeBlock((unsigned char *)cmd + 11, raw, (int)rawlen);
	memcpy(cmd + 11 + enc, "\r\n", 3);
	bool ok = conn_command(c, cmd, 235, "auth");
	free(raw);
	free(cmd);
	return ok;
}

/* Logs an acknowledged message. */
static void ack_record(long seq, const char *reply, const char *hash)
{
	char qid[32] = "-";
	const char *q = strstr(reply, "queued as ");
	if (q) {
		q += 10;
		size_t n = strspn(q, "0123456789");
		if (n > 0 && n < sizeof qid && (q[n] == '\0' || q[n] == ' ')) {
			memcpy(qid, q, n);
			qid[n] = '\0';
		}
	}
	pthread_mutex_lock(&ack_lock);
	fprintf(ack_file, "%ld %s %s\n", seq, qid, hash);
	fflush(ack_file);
	pthread_mutex_unlock(&ack_lock);
}

/* One transaction: MAIL, RCPT, DATA, payload. */
static bool conn_send_message(struct conn *c, long off)
{
	static const char envelope[] =
	    "MAIL FROM:<" ENVELOPE_FROM ">\r\n"
	    "RCPT TO:<" ENVELOPE_TO ">\r\n"
	    "DATA\r\n";
	static const size_t mail_len = sizeof "MAIL FROM:<" ENVELOPE_FROM ">\r\n" - 1;
	static const size_t rcpt_len = sizeof "RCPT TO:<" ENVELOPE_TO ">\r\n" - 1;
	char hash[65];
	long seq = opt.first_seq + off;

	c->seq = seq;
	size_t len = message_build(c->msg, message_bytes, seq);
	size_t plen = payload_build(c->out, c->msg, len);
	if (ack_file)
		sha256_hex(c->msg, len, hash);

	uint64_t t0 = now_ns();
	if (c->pipelining) {
		c->step = "mail";
		if (!conn_write(c, envelope, sizeof envelope - 1) ||
		    !conn_expect(c, 250, "mail") || !conn_expect(c, 250, "rcpt") ||
		    !conn_expect(c, 354, "data"))
			return false;
	} else {
		c->step = "mail";
		if (!conn_write(c, envelope, mail_len) || !conn_expect(c, 250, "mail"))
			return false;
		c->step = "rcpt";
		if (!conn_write(c, envelope + mail_len, rcpt_len) || !conn_expect(c, 250, "rcpt"))
			return false;
		c->step = "data";
		if (!conn_write(c, envelope + mail_len + rcpt_len, 6) || !conn_expect(c, 354, "data"))
			return false;
	}
	c->step = "message";
	if (!conn_write(c, c->out, plen) || !conn_expect(c, 250, "end-of-data"))
		return false;
	uint64_t t1 = now_ns();
	latency_ns[off] = t1 - t0 ? t1 - t0 : 1;
	atomic_fetch_add(&acked, 1);
	if (ack_file)
		ack_record(seq, c->line, hash);
	c->seq = -1;
	return true;
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	c->step = "connect";
	if (!conn_connect(c))
		return NULL;
	if (!conn_expect(c, 220, "greeting"))
		goto out;
	if (!conn_command(c, "EHLO smtpload.invalid\r\n", 250, "ehlo"))
		goto out;
	if (opt.starttls && !conn_starttls(c))
		goto out;
	c->pipelining = opt.pipelining && (c->ext & EXT_PIPELINING);
	if (opt.user && !conn_auth(c))
		goto out;
	while (!atomic_load(&abort_run)) {
		long off = atomic_fetch_add(&next_seq, 1);
		if (off >= opt.messages)
			break;
		if (!conn_send_message(c, off))
			goto out;
	}
	if (conn_command(c, "QUIT\r\n", 221, "quit"))
		c->quit_ns = now_ns();
out:
	if (c->ssl && !c->failed)
		SSL_shutdown(c->ssl);
	conn_close(c);
	return NULL;
}

/* ------------------------------------------------------------------ runs */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile_ms(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

static int run_load(void)
{
	long last_seq = opt.first_seq + opt.messages - 1;
	message_bytes = message_size_for(last_seq);
	latency_ns = calloc((size_t)opt.messages ? (size_t)opt.messages : 1, sizeof *latency_ns);
	if (!latency_ns)
		die("out of memory");
	if (opt.ack_log) {
		ack_file = fopen(opt.ack_log, "a");
		if (!ack_file)
			die("cannot open %s: %s", opt.ack_log, strerror(errno));
	}
	if (opt.starttls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!ssl_ctx)
			die("SSL_CTX_new: %s", ssl_error_text());
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);  /* self-signed */
	}
	if (!opt.quiet)
		fprintf(stderr, "smtpload: %s:%s, %ld connections, %ld messages of %zu bytes%s%s\n",
		    opt.host, opt.port, opt.connections, opt.messages, message_bytes,
		    opt.starttls ? ", STARTTLS" : "", opt.user ? ", AUTH PLAIN" : "");

	struct conn **conns = xmalloc((size_t)opt.connections * sizeof *conns);
	pthread_t *tids = xmalloc((size_t)opt.connections * sizeof *tids);
	/* Worst-case stuffing: a 3-byte line "." CRLF becomes 4 bytes. */
	size_t out_cap = message_bytes + message_bytes / 2 + 8;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);

	uint64_t start = now_ns();
	long started = 0;
	long created = 0;
	for (long i = 0; i < opt.connections; i++) {
		struct conn *c = conn_new((int)i + 1);
		c->msg = xmalloc(message_bytes);
		c->out = xmalloc(out_cap);
		c->out_cap = out_cap;
		conns[created++] = c;
		int rc = pthread_create(&tids[i], &attr, conn_thread, c);
		if (rc != 0) {
			c->step = "thread";
			conn_error(c, "pthread_create: %s", strerror(rc));
			break;
		}
		started++;
	}
	uint64_t end = start;
	for (long i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		if (conns[i]->quit_ns > end)
			end = conns[i]->quit_ns;
	}
	if (end == start)
		end = now_ns();
	pthread_attr_destroy(&attr);

	/* Latency statistics over the acknowledged messages. */
	size_t n = 0;
	for (long i = 0; i < opt.messages; i++)
		if (latency_ns[i])
			latency_ns[n++] = latency_ns[i];
	qsort(latency_ns, n, sizeof *latency_ns, cmp_u64);
	double secs = (double)(end - start) / 1e9;
	long done = atomic_load(&acked);
	double rate = secs > 0 ? (double)done / secs : 0;
	printf("messages=%ld connections=%ld size=%zu seconds=%.3f msgs_per_s=%.0f "
	    "mb_per_s=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.2f errors=%d\n",
	    done, opt.connections, message_bytes, secs, rate,
	    rate * (double)message_bytes / 1e6,
	    percentile_ms(latency_ns, n, 50), percentile_ms(latency_ns, n, 99),
	    n ? (double)latency_ns[n - 1] / 1e6 : 0.0, atomic_load(&errors));
	fflush(stdout);

	for (long i = 0; i < created; i++) {
		free(conns[i]->msg);
		free(conns[i]->out);
		free(conns[i]);
	}
	free(conns);
	free(tids);
	free(latency_ns);
	if (ack_file)
		fclose(ack_file);
	if (ssl_ctx)
		SSL_CTX_free(ssl_ctx);
	return atomic_load(&errors) || done != opt.messages ? 1 : 0;
}

static void on_stop(int sig)
{
	(void)sig;
	stop_idle = 1;
}

/* Opens N connections, reads the greetings, holds them open. */
static int run_idle(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int *fds = xmalloc((size_t)opt.connections * sizeof *fds);
	struct conn *c = conn_new(0);
	long open_ok = 0;
	uint64_t start = now_ns();

	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	for (long i = 0; i < opt.connections && !stop_idle; i++) {
		c->id = (int)i + 1;
		c->rpos = c->rlen = 0;
		c->step = "connect";
		if (!conn_connect(c))
			break;
		if (!conn_expect(c, 220, "greeting")) {
			conn_close(c);
			break;
		}
		fds[open_ok++] = c->fd;
	}
	double secs = (double)(now_ns() - start) / 1e9;
	printf("idle_connections=%ld seconds=%.3f errors=%d\n", open_ok, secs, atomic_load(&errors));
	fflush(stdout);

	uint64_t until = opt.hold > 0 ? now_ns() + (uint64_t)opt.hold * 1000000000u : 0;
	while (!stop_idle && (until == 0 || now_ns() < until))
		usleep(100 * 1000);
	for (long i = 0; i < open_ok; i++)
		close(fds[i]);
	free(fds);
	free(c);
	return atomic_load(&errors) || open_ok != opt.connections ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: smtpload --port N [--host H] [--connections N] [--messages M]\n"
	    "                [--size BYTES] [--auth USER:PASS] [--starttls]\n"
	    "                [--ack-log FILE] [--tag T] [--first-seq N] [--no-pipelining]\n"
	    "                [--timeout SECONDS] [--quiet]\n"
	    "       smtpload --port N --idle --connections N [--hold SECONDS]\n"
	    "       smtpload --print SEQ [--size BYTES] [--tag T] [--messages M --first-seq N]\n"
	    "BYTES may end in K or M (1024-based). --print writes message SEQ exactly as\n"
	    "a load run with the same --size, --tag (and --messages, --first-seq) sends it.\n");
}

static long parse_long(const char *name, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		die("bad value for --%s: \"%s\" (%ld..%ld)", name, s, min, max);
	return v;
}

static size_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long mult = 1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mult = 1024 * 1024, end++;
	if (errno || end == s || *end || s[0] == '-' || v == 0 || v > (1ull << 34) / mult)
		die("bad value for --size: \"%s\"", s);
	return (size_t)(v * mult);
}

int main(int argc, char **argv)
{
	enum { O_ACK = 256, O_TAG, O_FIRST, O_NOPIPE, O_TIMEOUT, O_IDLE, O_HOLD, O_PRINT };
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "connections", required_argument, NULL, 'c' },
		{ "messages", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "auth", required_argument, NULL, 'a' },
		{ "starttls", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "ack-log", required_argument, NULL, O_ACK },
		{ "tag", required_argument, NULL, O_TAG },
		{ "first-seq", required_argument, NULL, O_FIRST },
		{ "no-pipelining", no_argument, NULL, O_NOPIPE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "idle", no_argument, NULL, O_IDLE },
		{ "hold", required_argument, NULL, O_HOLD },
		{ "print", required_argument, NULL, O_PRINT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static char tagbuf[32];
	int ch;

	while ((ch = getopt_long(argc, argv, "H:p:c:m:s:a:tqh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': opt.host = optarg; break;
		case 'p': parse_long("port", optarg, 1, 65535); opt.port = optarg; break;
		case 'c': opt.connections = parse_long("connections", optarg, 1, 1000000); break;
		case 'm': opt.messages = parse_long("messages", optarg, 0, 1000000000); break;
		case 's': opt.size = parse_size(optarg); break;
		case 'a': {
			char *colon = strchr(optarg, ':');
			if (!colon || colon == optarg)
				die("--auth wants USER:PASS");
			*colon = '\0';
			opt.user = optarg;
			opt.pass = colon + 1;
			break;
		}
		case 't': opt.starttls = true; break;
		case 'q': opt.quiet = true; break;
		case O_ACK: opt.ack_log = optarg; break;
		case O_TAG:
			if (!*optarg || strlen(optarg) > 64 || strpbrk(optarg, "<>@ \t\r\n"))
				die("--tag: 1..64 characters, no spaces, <, > or @");
			opt.tag = optarg;
			break;
		case O_FIRST: opt.first_seq = parse_long("first-seq", optarg, 0, LONG_MAX / 4); break;
		case O_NOPIPE: opt.pipelining = false; break;
		case O_TIMEOUT: opt.timeout = parse_long("timeout", optarg, 1, 86400); break;
		case O_IDLE: opt.idle = true; break;
		case O_HOLD: opt.hold = parse_long("hold", optarg, 0, 86400 * 365); break;
		case O_PRINT: opt.print_seq = parse_long("print", optarg, 0, LONG_MAX / 4); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!opt.tag) {
		snprintf(tagbuf, sizeof tagbuf, "%lx.%x", (unsigned long)time(NULL), (unsigned)getpid());
		opt.tag = tagbuf;
	}
	if (opt.print_seq >= 0) {
		/* The size depends on the largest seq of the run, as in run_load. */
		long last = opt.first_seq + opt.messages - 1;
		if (last < opt.print_seq)
			last = opt.print_seq;
		size_t size = message_size_for(last);
		char *buf = xmalloc(size);
		message_build(buf, size, opt.print_seq);
		if (fwrite(buf, 1, size, stdout) != size || fflush(stdout) != 0)
			die("write error: %s", strerror(errno));
		free(buf);
		return 0;
	}
	if (!opt.port) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (opt.idle)
		return run_idle();
	return run_load();
}
