/*
 * libcurl's multi_socket interface on libevent (curl_loop.h). libcurl
 * asks, through two callbacks, for a socket to be watched (or no longer)
 * and for a wake-up after some time; both callbacks only arm events,
 * because libcurl must not be re-entered from them. The events call
 * curl_multi_socket_action, and after each call the finished transfers
 * are collected and their owners told.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "mailsnare/curl_loop.h"
#include "mailsnare/log.h"

/* One socket libcurl wants watched. */
struct curl_sock {
	struct curl_loop *cl;
	curl_socket_t fd;
	struct event *ev;
	struct curl_sock *prev, *next;
};

/* One transfer in progress (the easy handle's CURLOPT_PRIVATE). */
struct curl_xfer {
	CURL *easy;
	curl_loop_done_cb cb;
	void *arg;
	struct curl_xfer *prev, *next;
};

struct curl_loop {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct curl_sock *socks;
	struct curl_xfer *xfers;
	unsigned nxfers;
};

#define LIST_UNLINK(head, e) do {                  \
	if ((e)->prev) (e)->prev->next = (e)->next;    \
	else (head) = (e)->next;                       \
	if ((e)->next) (e)->next->prev = (e)->prev;    \
} while (0)
#define LIST_PUSH(head, e) do {                    \
	(e)->prev = NULL;                              \
	(e)->next = (head);                            \
	if (head) (head)->prev = (e);                  \
	(head) = (e);                                  \
} while (0)

/* Tells each owner whose transfer ended. */
static void curl_loop_collect(struct curl_loop *cl)
{
	struct curl_xfer *x;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(cl->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL)
			continue;
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(cl->multi, x->easy);
		curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
		LIST_UNLINK(cl->xfers, x);
		cl->nxfers--;
		x->cb(x->arg, x->easy, rc);
		free(x);
	}
}

static void curl_loop_action(struct curl_loop *cl, curl_socket_t fd, int flags)
{
	int running = 0;
	CURLMcode mc = curl_multi_socket_action(cl->multi, fd, flags, &running);

	if (mc != CURLM_OK)
		log_warn("curl: %s", curl_multi_strerror(mc));
	curl_loop_collect(cl);
}

static void curl_loop_sock_ready(evutil_socket_t fd, short what, void *arg)
{
	struct curl_sock *s = arg;
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_loop_action(s->cl, (curl_socket_t)fd, flags);
}

static void curl_loop_timer_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	curl_loop_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void curl_sock_free(struct curl_loop *cl, struct curl_sock *s)
{
	LIST_UNLINK(cl->socks, s);
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for `what`, or stop. */
static int curl_loop_sockcb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct curl_loop *cl = userp;
	struct curl_sock *s = socketp;
	short events = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			curl_sock_free(cl, s);
		curl_multi_assign(cl->multi, fd, NULL);
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->cl = cl;
		s->fd = fd;
		LIST_PUSH(cl->socks, s);
		curl_multi_assign(cl->multi, fd, s);
	} else if (s->ev != NULL) {
		event_free(s->ev);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EV_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EV_WRITE;
	s->ev = event_new(cl->base, fd, events, curl_loop_sock_ready, s);
	if (s->ev == NULL || event_add(s->ev, NULL) < 0) {
		log_warn("curl: cannot watch a socket");
		return -1;
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: wake libcurl after ms (-1: never). */
static int curl_loop_timercb(CURLM *multi, long ms, void *userp)
{
	struct curl_loop *cl = userp;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)multi;
	if (ms < 0)
		return evtimer_del(cl->timer) < 0 ? -1 : 0;
	return evtimer_add(cl->timer, &tv) < 0 ? -1 : 0;
}

struct curl_loop *curl_loop_new(struct event_base *base)
{
	struct curl_loop *cl = calloc(1, sizeof(*cl));

	if (cl == NULL)
		return NULL;
	cl->base = base;
	if ((cl->multi = curl_multi_init()) == NULL ||
	    (cl->timer = evtimer_new(base, curl_loop_timer_ready, cl)) == NULL) {
		curl_loop_free(cl);
		return NULL;
	}
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, curl_loop_sockcb);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, curl_loop_timercb);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	return cl;
}

void curl_loop_free(struct curl_loop *cl)
{
	struct curl_xfer *x;

	if (cl == NULL)
		return;
	while ((x = cl->xfers) != NULL) {
		curl_multi_remove_handle(cl->multi, x->easy);
		curl_easy_cleanup(x->easy);
		LIST_UNLINK(cl->xfers, x);
		free(x);
	}
	if (cl->multi)
		curl_multi_cleanup(cl->multi);
	/* Sockets of cached connections libcurl closed without a word. */
	while (cl->socks != NULL)
		curl_sock_free(cl, cl->socks);
	if (cl->timer)
		event_free(cl->timer);
	free(cl);
}

int curl_loop_add(struct curl_loop *cl, CURL *easy, curl_loop_done_cb cb, void *arg)
{
	struct curl_xfer *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	x->easy = easy;
	x->cb = cb;
	x->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	/* libcurl answers by arming the timer (for 0 ms): the first step
	 * runs from the loop, never from here. */
	if (curl_multi_add_handle(cl->multi, easy) != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(x);
		return -1;
	}
	LIST_PUSH(cl->xfers, x);
	cl->nxfers++;
	return 0;
}

void curl_loop_remove(struct curl_loop *cl, CURL *easy)
{
	struct curl_xfer *x = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (x == NULL)
		return;
	curl_multi_remove_handle(cl->multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	LIST_UNLINK(cl->xfers, x);
	cl->nxfers--;
	free(x);
}
