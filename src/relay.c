/*
 * Release to a real server (relay.h): the recipient rules, the message as
 * a libcurl upload read from the store a piece at a time, and the
 * transfer.
 *
 * Why a thread per release and not curl_loop.h: libcurl's SMTP blocks even
 * under the multi interface. Its "done" step waits in poll() for the reply
 * to the final dot, its disconnect for the reply to QUIT, and removing a
 * transfer midway runs both (curl issues #4015, #8555; "More non-blocking"
 * in curl's TODO). A stalled upstream would hold the reactor for minutes.
 * So the server runs each release with the easy interface on a thread of
 * its own (at most RELAY_JOBS_MAX), which reads the message through its
 * own store connection, and hears of the end through a pipe on the loop.
 * A cancelled release is stopped by its progress callback (within a
 * second), without the final dot: nothing half-sent is ever accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "mailsnare/config.h"
#include "mailsnare/log.h"
#include "mailsnare/relay.h"
#include "mailsnare/store.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

#define RELAY_CONNECT_TIMEOUT_S 15L
#define RELAY_TIMEOUT_S 300L
/* An upstream that takes less than a byte a second for this long is
 * given up on (a stalled server, not a slow link). */
#define RELAY_STALL_S 60L

struct relay {
	const struct config *cfg;
	int done_pipe[2];                /* threads write their job's address */
	struct event *ev_done;
	char url[800];
	char server[300];
	bool has_allowed, has_blocked;
	regex_t allowed, blocked;
	struct relay_job *jobs;
	unsigned njobs;
};

/* One release: the upload's state and who waits for the end. */
struct relay_job {
	struct relay *r;
	struct store *st;
	int64_t id;
	CURL *easy;
	struct curl_slist *rcpts;
	char from[RELAY_ADDR_MAX];
	char head[600];                  /* the Received: line */
	size_t head_len, head_off;
	uint64_t off, size;              /* of the stored message */
	bool found;
	char errbuf[CURL_ERROR_SIZE];
	relay_done_cb cb;                /* NULL once cancelled */
	void *arg;
	pthread_t thread;
	atomic_bool cancelled;
	enum relay_status result;        /* set by the thread */
	char err[RELAY_ERR_MAX];
	struct relay_job *prev, *next;
};

/* --- the rules ------------------------------------------------------------ */

static int relay_compile(regex_t *re, const char *key, const char *pattern, char *err,
    size_t errlen)
{
	char why[256];
	int rc = regcomp(re, pattern, CONFIG_REGEX_FLAGS);

	if (rc == 0)
		return 0;
	regerror(rc, re, why, sizeof(why));
	snprintf(err, errlen, "%s: invalid regular expression '%s' (%s)", key, pattern, why);
	return -1;
}

static void relay_thread_done(evutil_socket_t fd, short what, void *arg);

/* The pipe the release threads report on, and its event on the loop. */
static int relay_pipe(struct relay *r, struct event_base *base, char *err, size_t errlen)
{
	if (pipe2(r->done_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r->done_pipe[0] = r->done_pipe[1] = -1;
		snprintf(err, errlen, "relay: pipe: %s", strerror(errno));
		return -1;
	}
	/* The thread's write must never wait: a pointer is below PIPE_BUF, and
	 * the pipe holds far more than RELAY_JOBS_MAX of them. */
	(void)fcntl(r->done_pipe[1], F_SETFL, 0);
	r->ev_done = event_new(base, r->done_pipe[0], EV_READ | EV_PERSIST, relay_thread_done, r);
	if (r->ev_done == NULL || event_add(r->ev_done, NULL) < 0) {
		snprintf(err, errlen, "relay: out of memory");
		return -1;
	}
	return 0;
}

static int relay_rules(struct relay *r, const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->relay_allowed[0] != '\0') {
		if (relay_compile(&r->allowed, "relay-allowed-recipients", cfg->relay_allowed, err,
		    errlen) < 0)
			return -1;
		r->has_allowed = true;
	}
	if (cfg->relay_blocked[0] != '\0') {
		if (relay_compile(&r->blocked, "relay-blocked-recipients", cfg->relay_blocked, err,
		    errlen) < 0)
			return -1;
		r->has_blocked = true;
	}
	return 0;
}

int relay_new(const struct config *cfg, struct event_base *base, struct relay **out,
    char *err, size_t errlen)
{
	struct relay *r;
	const char *h = cfg->relay_host;
	bool v6 = strchr(h, ':') != NULL;

	*out = NULL;
	if (h[0] == '\0')
		return 0;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cfg = cfg;
	r->done_pipe[0] = r->done_pipe[1] = -1;
	/* The path of an SMTP URL is the name libcurl says in EHLO. */
	snprintf(r->url, sizeof(r->url), "%s://%s%s%s:%u/%s",
	    cfg->relay_tls == RELAY_TLS_TLS ? "smtps" : "smtp", v6 ? "[" : "", h, v6 ? "]" : "",
	    cfg->relay_port, cfg->hostname);
	snprintf(r->server, sizeof(r->server), "%s%s%s:%u", v6 ? "[" : "", h, v6 ? "]" : "",
	    cfg->relay_port);
	if (relay_rules(r, cfg, err, errlen) < 0 ||
	    (base != NULL && relay_pipe(r, base, err, errlen) < 0)) {
		relay_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

static void job_free(struct relay_job *j);
static void job_unlink(struct relay_job *j);

/* Every thread is told to stop, and waited for (a second or so: the
 * progress callback looks every second). */
void relay_free(struct relay *r)
{
	struct relay_job *j;

	if (r == NULL)
		return;
	for (j = r->jobs; j != NULL; j = j->next)
		relay_cancel(j);
	while ((j = r->jobs) != NULL) {
		pthread_join(j->thread, NULL);
		job_unlink(j);
		job_free(j);
	}
	if (r->ev_done)
		event_free(r->ev_done);
	if (r->done_pipe[0] >= 0) {
		close(r->done_pipe[0]);
		close(r->done_pipe[1]);
	}
	if (r->has_allowed)
		regfree(&r->allowed);
	if (r->has_blocked)
		regfree(&r->blocked);
	free(r);
}

const char *relay_server(const struct relay *r)
{
	return r->server;
}

/* An addr-spec as SMTP takes it in angle brackets: local@domain, nothing
 * that would end or break the path. */
static bool addr_valid(const char *a, size_t n)
{
	const char *at = memchr(a, '@', n);

	if (n == 0 || n >= RELAY_ADDR_MAX || at == NULL || at == a || at == a + n - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)a[i]) || iscntrl((unsigned char)a[i]) ||
		    strchr("<>,;()", a[i]) != NULL)
			return false;
	return true;
}

int relay_address(const char *in, char *out)
{
	const char *lt = strrchr(in, '<'), *gt;
	size_t n;

	for (const char *p = in; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p))
			return -1;
	while (isspace((unsigned char)*in))
		in++;
	if (lt != NULL) {
		/* "Name <a@b>": nothing but spaces after the bracket. */
		if ((gt = strchr(lt, '>')) == NULL || gt[strspn(gt + 1, " ") + 1] != '\0')
			return -1;
		in = lt + 1;
		n = (size_t)(gt - in);
	} else {
		n = strlen(in);
		while (n > 0 && isspace((unsigned char)in[n - 1]))
			n--;
	}
	if (!addr_valid(in, n))
		return -1;
	memcpy(out, in, n);
	out[n] = '\0';
	return 0;
}

enum relay_status relay_check_rcpt(const struct relay *r, const char *addr, char *err,
    size_t errlen)
{
	if (r->has_allowed && regexec(&r->allowed, addr, 0, NULL, 0) != 0) {
		snprintf(err, errlen, "Mail address does not match the allowlist "
		    "(relay-allowed-recipients): %s", addr);
		return RELAY_REFUSED;
	}
	if (r->has_blocked && regexec(&r->blocked, addr, 0, NULL, 0) == 0) {
		snprintf(err, errlen, "Mail address is blocked (relay-blocked-recipients): %s", addr);
		return RELAY_REFUSED;
	}
	return RELAY_OK;
}

/* --- a job -------------------------------------------------------------------- */

struct copy_sink {
	char *p;
	size_t len, cap;
};

static int copy_sink_cb(void *arg, const void *buf, size_t len)
{
	struct copy_sink *c = arg;

	if (len > c->cap - c->len)
		return -1;
	memcpy(c->p + c->len, buf, len);
	c->len += len;
	return 0;
}

/* CURLOPT_READFUNCTION: the Received: line, then the stored message, at
 * most one upload buffer (64 KiB) from the store per call. */
static size_t relay_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct relay_job *j = arg;
	size_t want = size * nitems, n = 0;
	struct copy_sink c = { buf, 0, want };

	if (j->head_off < j->head_len) {
		n = j->head_len - j->head_off < want ? j->head_len - j->head_off : want;
		memcpy(buf, j->head + j->head_off, n);
		j->head_off += n;
		return n;
	}
	if (j->off >= j->size)
		return 0;
	n = j->size - j->off < want ? (size_t)(j->size - j->off) : want;
	if (store_message_read_range(j->st, j->id, j->off, n, copy_sink_cb, &c) != STORE_OK ||
	    c.len != n) {
		snprintf(j->errbuf, sizeof(j->errbuf), "message %lld: cannot read it from the store",
		    (long long)j->id);
		return CURL_READFUNC_ABORT;
	}
	j->off += n;
	return n;
}

static int info_cb(const struct store_message_info *m, void *arg)
{
	struct relay_job *j = arg;

	j->size = m->size;
	j->found = true;
	snprintf(j->from, sizeof(j->from), "%s", m->mail_from ? m->mail_from : "");
	return 0;
}

/* The message's size and envelope sender; the Received: line. */
static enum relay_status job_load(struct relay_job *j, char *err, size_t errlen)
{
	const struct config *cfg = j->r->cfg;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	rc = store_message_get_info(j->st, j->id, info_cb, j);
	if (rc == STORE_NOTFOUND || (rc == STORE_OK && !j->found)) {
		snprintf(err, errlen, "no message %lld", (long long)j->id);
		return RELAY_NOTFOUND;
	}
	if (rc != STORE_OK) {
		snprintf(err, errlen, "store: %s", store_errmsg(j->st));
		return RELAY_FAILED;
	}
	if (cfg->relay_return_path[0] != '\0')
		snprintf(j->from, sizeof(j->from), "%s", cfg->relay_return_path);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	j->head_len = (size_t)snprintf(j->head, sizeof(j->head),
	    "Received: by %s (mailsnare %s, release of message %lld);\r\n\t%s\r\n",
	    cfg->hostname, PACKAGE_VERSION, (long long)j->id, date);
	return RELAY_OK;
}

static enum relay_status job_rcpts(struct relay_job *j, const char *const *rcpts, size_t n,
    char *err, size_t errlen)
{
	char addr[RELAY_ADDR_MAX];
	struct curl_slist *l;
	enum relay_status st;

	if (n == 0 || n > RELAY_RCPTS_MAX) {
		snprintf(err, errlen, n ? "too many recipients (at most %d)" :
		    "No valid addresses found", RELAY_RCPTS_MAX);
		return RELAY_REFUSED;
	}
	for (size_t i = 0; i < n; i++) {
		if (relay_address(rcpts[i], addr) < 0) {
			snprintf(err, errlen, "Invalid email address: %.*s", 200, rcpts[i]);
			return RELAY_REFUSED;
		}
		if ((st = relay_check_rcpt(j->r, addr, err, errlen)) != RELAY_OK)
			return st;
		if ((l = curl_slist_append(j->rcpts, addr)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return RELAY_FAILED;
		}
		j->rcpts = l;
	}
	return RELAY_OK;
}

static void job_tls(const struct relay *r, CURL *e)
{
	const struct config *cfg = r->cfg;

	if (cfg->relay_tls == RELAY_TLS_STARTTLS)
		curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (!cfg->relay_tls_verify) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static CURL *job_easy(struct relay_job *j)
{
	const struct config *cfg = j->r->cfg;
	CURL *e = curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, j->r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	/* Never through a proxy of the environment: the upstream is named. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, RELAY_CONNECT_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, RELAY_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, RELAY_STALL_S);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, j->from);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, j->rcpts);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, relay_read);
	curl_easy_setopt(e, CURLOPT_READDATA, j);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(j->head_len + j->size));
	if (cfg->relay_username[0] != '\0') {
		curl_easy_setopt(e, CURLOPT_USERNAME, cfg->relay_username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->relay_password);
	}
	job_tls(j->r, e);
	return e;
}

static void job_free(struct relay_job *j)
{
	if (j->easy)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->rcpts);
	free(j);
}

/* A job ready to run (rules checked, message found), or NULL. */
static struct relay_job *job_new(struct relay *r, struct store *st, int64_t id,
    const char *const *rcpts, size_t n, enum relay_status *status, char *err, size_t errlen)
{
	struct relay_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		*status = RELAY_FAILED;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	j->r = r;
	j->st = st;
	j->id = id;
	if ((*status = job_rcpts(j, rcpts, n, err, errlen)) != RELAY_OK ||
	    (*status = job_load(j, err, errlen)) != RELAY_OK) {
		job_free(j);
		return NULL;
	}
	if ((j->easy = job_easy(j)) == NULL) {
		*status = RELAY_FAILED;
		snprintf(err, errlen, "out of memory");
		job_free(j);
		return NULL;
	}
	return j;
}

/* What went wrong, in one line: libcurl's words, its detail, the last
 * SMTP reply code. */
static void job_error(struct relay_job *j, CURLcode rc, char *err, size_t errlen)
{
	long code = 0;
	int n;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	n = snprintf(err, errlen, "release of message %lld to %s failed: %s", (long long)j->id,
	    j->r->server, j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc));
	if (code >= 400 && n > 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, " (SMTP reply %ld)", code);
}

static void job_unlink(struct relay_job *j)
{
	struct relay *r = j->r;

	if (j->prev)
		j->prev->next = j->next;
	else
		r->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	r->njobs--;
}

/* CURLOPT_XFERINFOFUNCTION: libcurl calls it at least once a second,
 * also while it waits for a reply; non-zero aborts the transfer. */
static int job_progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult,
    curl_off_t uln)
{
	struct relay_job *j = arg;

	return atomic_load(&j->cancelled) ? 1 : 0;
}

static enum relay_status job_perform(struct relay_job *j, char *err, size_t errlen)
{
	CURLcode rc = curl_easy_perform(j->easy);

	if (rc == CURLE_OK)
		return RELAY_OK;
	job_error(j, rc, err, errlen);
	return RELAY_FAILED;
}

/* A release thread: its own store connection (the server's is the
 * loop's), the transfer, then the job's address down the pipe. */
static void *job_thread(void *arg)
{
	struct relay_job *j = arg;
	const struct config *cfg = j->r->cfg;
	char why[256] = "";
	ssize_t n;

	j->st = store_open(&(struct store_options){ .path = cfg->db,
	    .durability = cfg->durability, .err = why, .errlen = sizeof(why),
	    .limits = { cfg->max_mailboxes, cfg->max_subscriptions, cfg->max_keywords } });
	if (j->st == NULL) {
		j->result = RELAY_FAILED;
		snprintf(j->err, sizeof(j->err), "store: %s", why);
	} else {
		j->result = job_perform(j, j->err, sizeof(j->err));
		store_close(j->st);
		j->st = NULL;
	}
	do
		n = write(j->r->done_pipe[1], &j, sizeof(j));
	while (n < 0 && errno == EINTR);
	return NULL;
}

/* On the loop: the threads that ended, their owners told. */
static void relay_thread_done(evutil_socket_t fd, short what, void *arg)
{
	struct relay_job *j;

	(void)what;
	(void)arg;
	while (read(fd, &j, sizeof(j)) == (ssize_t)sizeof(j)) {
		pthread_join(j->thread, NULL);
		job_unlink(j);
		if (j->result == RELAY_OK)
			log_info("relay: message %lld released to %s", (long long)j->id,
			    j->r->server);
		else
			log_warn("relay: %s", j->err);
		if (j->cb != NULL)
			j->cb(j->arg, j->result, j->err);
		job_free(j);
	}
}

struct relay_job *relay_start(struct relay *r, struct store *st, int64_t id,
    const char *const *rcpts, size_t n, relay_done_cb cb, void *arg,
    enum relay_status *status, char *err, size_t errlen)
{
	struct relay_job *j;

	if (r->njobs >= RELAY_JOBS_MAX) {
		*status = RELAY_BUSY;
		snprintf(err, errlen, "%d releases in progress: try again later", RELAY_JOBS_MAX);
		return NULL;
	}
	if ((j = job_new(r, st, id, rcpts, n, status, err, errlen)) == NULL)
		return NULL;
	j->st = NULL;                        /* the thread opens its own */
	j->cb = cb;
	j->arg = arg;
	curl_easy_setopt(j->easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(j->easy, CURLOPT_XFERINFOFUNCTION, job_progress);
	curl_easy_setopt(j->easy, CURLOPT_XFERINFODATA, j);
	if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
		*status = RELAY_FAILED;
		snprintf(err, errlen, "cannot start a thread for the release");
		job_free(j);
		return NULL;
	}
	j->next = r->jobs;
	if (r->jobs)
		r->jobs->prev = j;
	r->jobs = j;
	r->njobs++;
	return j;
}

/* The thread goes on until its progress callback sees the flag; the job
 * is freed when it reports. */
void relay_cancel(struct relay_job *j)
{
	j->cb = NULL;
	atomic_store(&j->cancelled, true);
}

enum relay_status relay_send_sync(struct relay *r, struct store *st, int64_t id,
    const char *const *rcpts, size_t n, char *err, size_t errlen)
{
	enum relay_status status;
	struct relay_job *j = job_new(r, st, id, rcpts, n, &status, err, errlen);

	if (j == NULL)
		return status;
	status = job_perform(j, err, errlen);
	job_free(j);
	return status;
}
