/*
 * GET /metrics: the Prometheus text exposition (metrics.c), on the HTTP
 * listener unless `metrics = off` (then 404, as any unknown path). The
 * per-inbox gauges are scoped as the rest of the API.
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
	/* An inbox's login (or the /api/v1/inboxes/{Name}/ prefix) sees its
	 * own inbox's numbers only, as everywhere in the API. */
	if (metrics_render(out, &(struct metrics_source){ &r->srv->stats, r->srv->store,
	    r->srv->cfg->db, r->inbox_id != 0 ? r->inbox : NULL }) < 0) {
		evbuffer_free(out);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	http_reply_buffer(r, 200, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
	return HTTP_DONE;
}
