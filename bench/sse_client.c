/*
 * sse_client: the SSE part of bench/http.sh, as a client that is not
 * itself the bottleneck.
 *
 *   sse_client HTTP_PORT SMTP_PORT SUBSCRIBERS MESSAGES GAP_MS
 *
 * Opens SUBSCRIBERS streams on 127.0.0.1:HTTP_PORT/api/v1/events (one
 * epoll loop, non-blocking sockets), then a thread delivers MESSAGES
 * messages over SMTP one every GAP_MS and notes each 250. Every socket has
 * SO_TIMESTAMPNS: the kernel stamps each segment when it is received,
 * which on loopback is inside the server's write(2). Two figures then:
 *
 *   server_*  kernel time of a stream's `new` event minus kernel time of
 *             its message's 250: the server's own delay (queueing,
 *             fan-out, the writes), whatever this client is doing;
 *   fanout_*  per message, the last stream's kernel time minus the 250's;
 *   client_*  when this process read the event minus when the sender
 *             thread read the 250 (what bench/http_drive.py sse measures;
 *             it adds this client's scheduling on a loaded machine).
 *
 * Prints one line of key=value. Only 127.0.0.1; every wait has a deadline.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_S 60
#define MAX_MESSAGES 10000

struct stream {
	int fd;
	bool head;
	size_t len;
	char buf[16384];
	size_t ngot;
	double *kern, *user;               /* per message index, 0: not yet */
};

struct sent {
	long long id;
	double kern, user;
};

static struct {
	int smtp_port, messages, gap_ms;
	pthread_mutex_t lock;
	struct sent sent[MAX_MESSAGES];
	int nsent;
	bool done, failed;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static double now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { DEADLINE_S, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* recv with the kernel's receive time of the first segment read. */
static ssize_t recv_ts(int fd, char *buf, size_t cap, double *kern)
{
	char ctl[CMSG_SPACE(sizeof(struct timespec))];
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
	    .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(fd, &mh, 0);

	*kern = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			*kern = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		}
	}
	return n;
}

/* Reads one SMTP reply (last line "ddd "); its code, or -1. */
static int smtp_reply(int fd, char *line, size_t cap, double *kern)
{
	size_t len = 0;
	double k, first = 0;
	ssize_t n;
	char *p;

	for (;;) {
		if (len + 1 >= cap || (n = recv_ts(fd, line + len, cap - len - 1, &k)) <= 0)
			return -1;
		if (first == 0)
			first = k;
		len += (size_t)n;
		line[len] = '\0';
		/* the last line: "ddd " at a line start, ending in CRLF */
		for (p = line; (p = strstr(p, "\r\n")) != NULL && p[2] != '\0'; p += 2)
			;
		if (p == NULL)
			continue;
		p = line;
		for (char *q; (q = strstr(p, "\r\n")) != NULL && q[2] != '\0'; p = q + 2)
			;
		if (strlen(p) >= 4 && p[3] == ' ') {
			*kern = first;
			return atoi(p);
		}
	}
}

static int smtp_cmd(int fd, const char *cmd, int want, char *line, size_t cap, double *kern)
{
	double k;

	if (cmd != NULL && send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd))
		return -1;
	return smtp_reply(fd, line, cap, kern ? kern : &k) == want ? 0 : -1;
}

static void *sender(void *arg)
{
	char line[4096], body[256];
	struct timespec gap;
	double kern;
	int fd = connect_lo(g.smtp_port);
	const char *p;

	(void)arg;
	gap.tv_sec = g.gap_ms / 1000;
	gap.tv_nsec = (long)(g.gap_ms % 1000) * 1000000;
	if (fd < 0 || smtp_cmd(fd, NULL, 220, line, sizeof(line), NULL) < 0 ||
	    smtp_cmd(fd, "EHLO bench\r\n", 250, line, sizeof(line), NULL) < 0)
		goto fail;
	for (int i = 0; i < g.messages; i++) {
		nanosleep(&gap, NULL);
		snprintf(body, sizeof(body), "From: a@sender.test\r\nTo: b@example.test\r\n"
		    "Subject: sse bench %d\r\n\r\nhello\r\n.\r\n", i);
		if (smtp_cmd(fd, "MAIL FROM:<a@sender.test>\r\n", 250, line, sizeof(line), NULL) < 0 ||
		    smtp_cmd(fd, "RCPT TO:<b@example.test>\r\n", 250, line, sizeof(line), NULL) < 0 ||
		    smtp_cmd(fd, "DATA\r\n", 354, line, sizeof(line), NULL) < 0 ||
		    smtp_cmd(fd, body, 250, line, sizeof(line), &kern) < 0)
			goto fail;
		pthread_mutex_lock(&g.lock);
		g.sent[i].user = now_real();
		g.sent[i].kern = kern;
		p = strstr(line, "queued as ");
		g.sent[i].id = p ? atoll(p + 10) : -1;
		g.nsent = i + 1;
		pthread_mutex_unlock(&g.lock);
	}
	(void)smtp_cmd(fd, "QUIT\r\n", 221, line, sizeof(line), NULL);
	close(fd);
	pthread_mutex_lock(&g.lock);
	g.done = true;
	pthread_mutex_unlock(&g.lock);
	return NULL;
fail:
	fprintf(stderr, "sse_client: SMTP failed: %s\n", fd < 0 ? strerror(errno) : line);
	pthread_mutex_lock(&g.lock);
	g.failed = g.done = true;
	pthread_mutex_unlock(&g.lock);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static bool sender_done(void)
{
	bool done;

	pthread_mutex_lock(&g.lock);
	done = g.done;
	pthread_mutex_unlock(&g.lock);
	return done;
}

/* The message index of id among those sent, or -1 (not yet known). */
static int sent_index(long long id)
{
	int i, r = -1;

	pthread_mutex_lock(&g.lock);
	for (i = g.nsent - 1; i >= 0 && r < 0; i--)
		if (g.sent[i].id == id)
			r = i;
	pthread_mutex_unlock(&g.lock);
	return r;
}

/*
 * Takes the complete event blocks out of s->buf (chunk framing lines are
 * skipped: they hold no "event:"). A `new` for a message whose 250 the
 * sender has not noted yet is kept until it has (the 250 and the event
 * race on a loaded machine): pending is then true.
 */
static bool stream_parse(struct stream *s, double kern, double user)
{
	char *end, *ev, *idp;
	size_t used;
	long long id;
	int i;

	if (!s->head) {
		if ((end = memmem(s->buf, s->len, "\r\n\r\n", 4)) == NULL)
			return false;
		if (strncmp(s->buf, "HTTP/1.1 200", 12) != 0) {
			fprintf(stderr, "sse_client: %.100s\n", s->buf);
			exit(1);
		}
		s->head = true;
		used = (size_t)(end + 4 - s->buf);
		memmove(s->buf, s->buf + used, s->len - used);
		s->len -= used;
	}
	while ((end = memmem(s->buf, s->len, "\n\n", 2)) != NULL) {
		*end = '\0';
		ev = strstr(s->buf, "event: new\ndata: ");
		if (ev != NULL && (idp = strstr(ev, "\"ID\":")) != NULL) {
			id = atoll(idp + 5 + (idp[5] == '"'));
			if ((i = sent_index(id)) < 0 && !sender_done()) {
				*end = '\n';
				return true;
			}
			if (i >= 0 && s->kern[i] == 0) {
				s->kern[i] = kern;
				s->user[i] = user;
				s->ngot++;
			}
		}
		used = (size_t)(end + 2 - s->buf);
		memmove(s->buf, s->buf + used, s->len - used);
		s->len -= used;
	}
	return false;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i = (size_t)((double)n * p);

	return n == 0 ? -1 : v[i < n ? i : n - 1];
}

static void report(struct stream *st, int nsub)
{
	size_t n = 0, missing = 0;
	double *srv = calloc((size_t)nsub * (size_t)g.nsent + 1, sizeof(double));
	double *cli = calloc((size_t)nsub * (size_t)g.nsent + 1, sizeof(double));
	double *fan = calloc((size_t)g.nsent + 1, sizeof(double));
	double *first = calloc((size_t)g.nsent + 1, sizeof(double));

	for (int i = 0; i < g.nsent; i++) {
		double last = 0, early = 0;
		for (int j = 0; j < nsub; j++) {
			if (st[j].kern[i] == 0) {
				missing++;
				continue;
			}
			srv[n] = (st[j].kern[i] - g.sent[i].kern) * 1e3;
			cli[n++] = (st[j].user[i] - g.sent[i].user) * 1e3;
			if (st[j].kern[i] > last)
				last = st[j].kern[i];
			if (early == 0 || st[j].kern[i] < early)
				early = st[j].kern[i];
		}
		fan[i] = last ? (last - g.sent[i].kern) * 1e3 : -1;
		first[i] = early ? (early - g.sent[i].kern) * 1e3 : -1;
	}
	qsort(srv, n, sizeof(double), cmp_double);
	qsort(cli, n, sizeof(double), cmp_double);
	qsort(fan, (size_t)g.nsent, sizeof(double), cmp_double);
	qsort(first, (size_t)g.nsent, sizeof(double), cmp_double);
	printf("subscribers=%d messages=%d events=%zu missing=%zu "
	    "server_p50_ms=%.2f server_p99_ms=%.2f server_max_ms=%.2f "
	    "first_p50_ms=%.2f first_max_ms=%.2f fanout_p50_ms=%.2f fanout_max_ms=%.2f "
	    "client_p50_ms=%.2f client_p99_ms=%.2f client_max_ms=%.2f\n",
	    nsub, g.nsent, n, missing, pct(srv, n, 0.5), pct(srv, n, 0.99), n ? srv[n - 1] : -1,
	    pct(first, (size_t)g.nsent, 0.5), g.nsent ? first[g.nsent - 1] : -1,
	    pct(fan, (size_t)g.nsent, 0.5), g.nsent ? fan[g.nsent - 1] : -1,
	    pct(cli, n, 0.5), pct(cli, n, 0.99), n ? cli[n - 1] : -1);
	free(srv);
	free(cli);
	free(fan);
	free(first);
}

static void stream_read(struct stream *s, int *heads)
{
	double kern, user;
	bool had = s->head;
	ssize_t n;

	for (;;) {
		if (s->len >= sizeof(s->buf) - 1) {
			fprintf(stderr, "sse_client: an event larger than the buffer\n");
			exit(1);
		}
		n = recv_ts(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, &kern);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			fprintf(stderr, "sse_client: a stream was closed by the server\n");
			exit(1);
		}
		user = now_real();
		s->len += (size_t)n;
		s->buf[s->len] = '\0';
		/* An event that raced its 250: the sender's note is a moment away. */
		while (stream_parse(s, kern, user))
			usleep(100);
		if (!had && s->head)
			++*heads;
	}
}

static bool all_in(struct stream *st, int nsub)
{
	bool done = sender_done();

	for (int j = 0; done && j < nsub; j++)
		if (st[j].ngot < (size_t)g.nsent)
			return false;
	return done;
}

int main(int argc, char **argv)
{
	static const char req[] = "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Accept: text/event-stream\r\n\r\n";
	struct epoll_event e, evs[256];
	struct stream *st;
	pthread_t th;
	int http_port, nsub, ep, heads = 0, n;
	time_t deadline;

	if (argc != 6) {
		fprintf(stderr, "usage: sse_client HTTP_PORT SMTP_PORT SUBSCRIBERS MESSAGES GAP_MS\n");
		return 2;
	}
	http_port = atoi(argv[1]);
	g.smtp_port = atoi(argv[2]);
	nsub = atoi(argv[3]);
	g.messages = atoi(argv[4]);
	g.gap_ms = atoi(argv[5]);
	if (nsub <= 0 || g.messages <= 0 || g.messages > MAX_MESSAGES)
		return 2;
	st = calloc((size_t)nsub, sizeof(*st));
	ep = epoll_create1(0);
	for (int j = 0; j < nsub; j++) {
		st[j].kern = calloc((size_t)g.messages, sizeof(double));
		st[j].user = calloc((size_t)g.messages, sizeof(double));
		if ((st[j].fd = connect_lo(http_port)) < 0 ||
		    send(st[j].fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != sizeof(req) - 1) {
			fprintf(stderr, "sse_client: stream %d: %s\n", j, strerror(errno));
			return 1;
		}
		fcntl(st[j].fd, F_SETFL, fcntl(st[j].fd, F_GETFL) | O_NONBLOCK);
		e.events = EPOLLIN;
		e.data.ptr = &st[j];
		epoll_ctl(ep, EPOLL_CTL_ADD, st[j].fd, &e);
	}
	deadline = time(NULL) + DEADLINE_S;
	while (heads < nsub && time(NULL) < deadline)
		for (int i = 0, k = epoll_wait(ep, evs, 256, 1000); i < k; i++)
			stream_read(evs[i].data.ptr, &heads);
	if (heads < nsub) {
		fprintf(stderr, "sse_client: %d of %d streams answered\n", heads, nsub);
		return 1;
	}
	pthread_create(&th, NULL, sender, NULL);
	deadline = time(NULL) + DEADLINE_S + (time_t)g.messages * g.gap_ms / 1000;
	while (!all_in(st, nsub) && time(NULL) < deadline) {
		n = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < n; i++)
			stream_read(evs[i].data.ptr, &heads);
	}
	pthread_join(th, NULL);
	if (g.failed)
		return 1;
	report(st, nsub);
	return 0;
}
