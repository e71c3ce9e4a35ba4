/*
 * Parallel socket writes for the events fan-out: the loop collects the
 * writes of one pass (fd and iovecs), hands them to fanout_run, which
 * writes them on the loop's thread and on persistent helper threads at
 * once, and returns only when every write is done. The helpers do nothing
 * but writev on the descriptors they are given, inside that call: no
 * libevent, no other shared state, and no descriptor can be closed or
 * reused under them since the loop runs no callback meanwhile. What a
 * write left (partial, EAGAIN, error) is the caller's to queue after.
 */
#ifndef MAILSNARE_FANOUT_H
#define MAILSNARE_FANOUT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#define FANOUT_IOV 3

struct fanout_write {
	int fd;
	int niov;
	struct iovec v[FANOUT_IOV];
	ssize_t n;                     /* out: bytes written, 0 on EAGAIN or error */
};

struct fanout;

/* The helpers for this machine: one fewer than its online cores, at most
 * FANOUT_HELPERS_MAX (a write is the kernel's TCP path on one socket; past
 * a few cores the loop's own share is no longer what the last stream waits
 * for). 0 on one core. */
#define FANOUT_HELPERS_MAX 3
unsigned fanout_default_helpers(void);

/* With helpers == 0, or if no thread could be started, NULL: fanout_run
 * then writes everything on the caller's thread. */
struct fanout *fanout_new(unsigned helpers);
void fanout_free(struct fanout *f);

/* Writes w[0..n) (each w->n set), in parallel when f is not NULL and n is
 * worth it. Every write has been made, and no helper touches w or its
 * descriptors any more, when it returns. */
void fanout_run(struct fanout *f, struct fanout_write *w, size_t n);

#endif
