/* curl_loop on a real event_base, against an evhttp server on the same
 * base: a transfer ends through its callback, once, from the loop; a
 * refused connection is reported the same way; a removed transfer is
 * never reported; many at once all end. */
#include <criterion/criterion.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "mailsnare/curl_loop.h"

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	struct curl_loop *cl;
	unsigned port;
	unsigned requests, done;
	size_t received;
	CURLcode last;
	char url[64];
};

static void serve_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	struct evbuffer *out = evbuffer_new();

	f->requests++;
	f->received += evbuffer_get_length(evhttp_request_get_input_buffer(req));
	evbuffer_add_printf(out, "a reply body curl must not print");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void setup(struct fixture *f)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	evhttp_set_gencb(f->http, serve_cb, f);
	bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	cr_assert_not_null(bs);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len);
	f->port = ntohs(sin.sin_port);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/x", f->port);
	f->cl = curl_loop_new(f->base);
	cr_assert_not_null(f->cl);
}

static void teardown(struct fixture *f)
{
	curl_loop_free(f->cl);
	evhttp_free(f->http);
	event_base_free(f->base);
	curl_global_cleanup();
}

static void done_cb(void *arg, CURL *easy, CURLcode rc)
{
	struct fixture *f = arg;

	f->done++;
	f->last = rc;
	curl_easy_cleanup(easy);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static CURL *post(const char *url)
{
	CURL *e = curl_easy_init();

	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "hello");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	return e;
}

/* Runs the loop until `want` transfers ended (or 10 s passed). */
static void run_until(struct fixture *f, unsigned want)
{
	struct timeval tick = { 0, 10000 };

	for (int i = 0; i < 1000 && f->done < want; i++) {
		event_base_loopexit(f->base, &tick);
		event_base_dispatch(f->base);
	}
}

Test(curl_loop, a_post_ends_through_its_callback)
{
	struct fixture f;

	setup(&f);
	cr_assert_eq(curl_loop_add(f.cl, post(f.url), done_cb, &f), 0);
	cr_assert_eq(f.done, 0, "never from inside curl_loop_add");
	run_until(&f, 1);
	cr_assert_eq(f.done, 1);
	cr_assert_eq(f.last, CURLE_OK);
	cr_assert_eq(f.requests, 1);
	cr_assert_eq(f.received, 5, "the body was sent");
	run_until(&f, 2);
	cr_assert_eq(f.done, 1, "once");
	teardown(&f);
}

Test(curl_loop, refused_connection_is_reported)
{
	struct fixture f;
	char url[64];

	setup(&f);
	/* The listener's port once it is gone: nobody there. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", f.port);
	evhttp_free(f.http);
	f.http = evhttp_new(f.base);
	cr_assert_eq(curl_loop_add(f.cl, post(url), done_cb, &f), 0);
	run_until(&f, 1);
	cr_assert_eq(f.done, 1);
	cr_assert_eq(f.last, CURLE_COULDNT_CONNECT);
	teardown(&f);
}

Test(curl_loop, removed_transfer_is_not_reported)
{
	struct fixture f;
	CURL *e;

	setup(&f);
	e = post(f.url);
	cr_assert_eq(curl_loop_add(f.cl, e, done_cb, &f), 0);
	curl_loop_remove(f.cl, e);
	curl_easy_cleanup(e);
	cr_assert_eq(curl_loop_add(f.cl, post(f.url), done_cb, &f), 0);
	run_until(&f, 2);
	cr_assert_eq(f.done, 1, "only the one left");
	teardown(&f);
}

Test(curl_loop, many_at_once)
{
	struct fixture f;

	setup(&f);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(curl_loop_add(f.cl, post(f.url), done_cb, &f), 0);
	run_until(&f, 20);
	cr_assert_eq(f.done, 20);
	cr_assert_eq(f.requests, 20);
	cr_assert_eq(f.last, CURLE_OK);
	teardown(&f);
}
