/*
 * GET /metrics: the Prometheus text exposition (metrics.c), on the HTTP
 * listener unless `metrics = off` (then 404, as any unknown path).
 */
#include <event2/buffer.h>

#include "mailsnare/config.h"
#include "mailsnare/metrics.h"
#include "mailsnare/server.h"
#include "http_internal.h"

enum http_rc http_api_metrics(struct http_req *r)
{
	struct evbuffer *out;

	if (!r->srv->cfg->metrics) {
		http_reply_404(r);
		return HTTP_DONE;
	}
	if ((out = evbuffer_new()) == NULL) {
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	if (metrics_render(out, r->srv->store, r->srv->cfg->db) < 0) {
		evbuffer_free(out);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	http_reply_buffer(r, 200, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
	return HTTP_DONE;
}
