/*
 * The events fan-out's writer threads (include/mailsnare/fanout.h).
 *
 * A loopback write costs 5-7 us of CPU (the TCP path and waking the
 * reader), so a thousand streams written one after the other by the loop
 * take 5-7 ms and the last stream's event is that late. Written by the
 * loop and by N-1 helpers on N cores, it is N times less.
 *
 * Writes are claimed one at a time from a shared counter, by the loop and
 * by each helper as soon as it is awake: a helper the scheduler is slow to
 * wake (a busy core) takes fewer, the loop more, so the last stream's wait
 * is the best the cores that are free can do, and no share waits for a
 * thread that has not started. The counter goes front to back: the
 * streams written first are those that subscribed last (the list's head),
 * which is as good an order as any, every stream waiting for the same 250.
 *
 * The barrier: the loop closes the pass under the mutex and waits until
 * no helper is inside it. A helper enters a pass only while it is open
 * (under the same mutex), so once fanout_run returns no helper reads w
 * or writes a descriptor of it, even one that woke late.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "mailsnare/fanout.h"

/* Below this many writes a pass is the loop's alone: waking a helper
 * (a futex and a context switch, tens of us) costs more than it saves. */
#define FANOUT_MIN_PARALLEL 16

struct fanout {
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	pthread_t th[FANOUT_HELPERS_MAX];
	unsigned nth;
	/* The pass (under mu): its writes, whether helpers may still enter,
	 * how many are inside, and a generation so a helper enters each pass
	 * at most once. */
	struct fanout_write *w;
	size_t n;
	bool open, stop;
	unsigned busy;
	unsigned long gen;
	atomic_size_t next;             /* the next write to claim */
};

static void write_one(struct fanout_write *w)
{
	ssize_t n;

	do
		n = writev(w->fd, w->v, w->niov);
	while (n < 0 && errno == EINTR);
	w->n = n < 0 ? 0 : n;
}

static void claim_all(struct fanout *f, struct fanout_write *w, size_t n)
{
	size_t i;

	while ((i = atomic_fetch_add_explicit(&f->next, 1, memory_order_relaxed)) < n)
		write_one(&w[i]);
}

static void *helper(void *arg)
{
	struct fanout *f = arg;
	unsigned long seen = 0;
	struct fanout_write *w;
	size_t n;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->stop && (!f->open || f->gen == seen))
			pthread_cond_wait(&f->work, &f->mu);
		if (f->stop)
			break;
		seen = f->gen;
		w = f->w;
		n = f->n;
		f->busy++;
		pthread_mutex_unlock(&f->mu);
		claim_all(f, w, n);
		pthread_mutex_lock(&f->mu);
		if (--f->busy == 0)
			pthread_cond_signal(&f->idle);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

unsigned fanout_default_helpers(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus <= 1)
		return 0;
	return cpus - 1 > FANOUT_HELPERS_MAX ? FANOUT_HELPERS_MAX : (unsigned)(cpus - 1);
}

struct fanout *fanout_new(unsigned helpers)
{
	sigset_t all, old;
	bool mask_ok;
	struct fanout *f;

	if (helpers == 0 || (f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if (helpers > FANOUT_HELPERS_MAX)
		helpers = FANOUT_HELPERS_MAX;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		return NULL;
	}
	pthread_cond_init(&f->work, NULL);
	pthread_cond_init(&f->idle, NULL);
	atomic_init(&f->next, 0);
	/* The helpers block every signal (they inherit the mask): the loop's
	 * own (libevent's signal events, the timers of syscalls it expects to
	 * interrupt) go to it; SIGPIPE is ignored process-wide (serve.c). */
	sigfillset(&all);
	mask_ok = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
	while (f->nth < helpers && pthread_create(&f->th[f->nth], NULL, helper, f) == 0)
		f->nth++;
	if (mask_ok)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (f->nth == 0) {
		fanout_free(f);
		return NULL;
	}
	return f;
}

void fanout_free(struct fanout *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->work);
	pthread_mutex_unlock(&f->mu);
	for (unsigned i = 0; i < f->nth; i++)
		pthread_join(f->th[i], NULL);
	pthread_cond_destroy(&f->work);
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void fanout_run(struct fanout *f, struct fanout_write *w, size_t n)
{
	if (f == NULL || n < FANOUT_MIN_PARALLEL) {
		for (size_t i = 0; i < n; i++)
			write_one(&w[i]);
		return;
	}
	pthread_mutex_lock(&f->mu);
	f->w = w;
	f->n = n;
	atomic_store_explicit(&f->next, 0, memory_order_relaxed);
	f->open = true;
	f->gen++;
	pthread_cond_broadcast(&f->work);
	pthread_mutex_unlock(&f->mu);
	claim_all(f, w, n);
	/* The barrier: no helper enters now, and those inside finish the
	 * write they claimed (the counter is past n for them too). */
	pthread_mutex_lock(&f->mu);
	f->open = false;
	while (f->busy > 0)
		pthread_cond_wait(&f->idle, &f->mu);
	pthread_mutex_unlock(&f->mu);
}
