/*
 * libcurl's multi interface on the server's event_base: libcurl tells us
 * which sockets to watch and when to wake it (CURLMOPT_SOCKETFUNCTION,
 * CURLMOPT_TIMERFUNCTION), libevent tells libcurl when they are ready, and
 * the owner of a transfer hears of its end through a callback from the
 * loop. For HTTP(S) (the webhook) nothing then blocks the reactor. Not
 * for every protocol: libcurl's SMTP, FTP, IMAP and POP3 still wait in
 * poll() for some replies (relay.c does not use this for SMTP).
 */
#ifndef MAILSNARE_CURL_LOOP_H
#define MAILSNARE_CURL_LOOP_H

#include <curl/curl.h>

struct event_base;
struct curl_loop;

/* The transfer ended: rc is its result. The easy handle is the owner's
 * again (removed from the loop): it cleans it up, here or later. */
typedef void (*curl_loop_done_cb)(void *arg, CURL *easy, CURLcode rc);

/* NULL if out of memory. curl_global_init must have run. */
struct curl_loop *curl_loop_new(struct event_base *base);
/* Transfers still running are abandoned (their callbacks never run); the
 * owners must have removed theirs. */
void curl_loop_free(struct curl_loop *cl);

/* Starts a transfer of a configured easy handle (its CURLOPT_PRIVATE is
 * the loop's). 0, or -1 (nothing started). cb never runs from inside. */
int curl_loop_add(struct curl_loop *cl, CURL *easy, curl_loop_done_cb cb, void *arg);
/* Stops a transfer whose callback has not run; the handle is the
 * caller's again. */
void curl_loop_remove(struct curl_loop *cl, CURL *easy);

#endif
