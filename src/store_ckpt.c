/*
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs
 * inside the COMMIT that crosses its threshold: it copies the WAL's pages
 * into the database file and fsyncs both, 20-90 ms of one loop pass on the
 * project's VM under load, every 4 MB written. For the server, a thread of
 * its own with its own connection does that instead (PASSIVE: it never
 * waits for, nor blocks, the loop's readers and writers; SQLite restarts
 * the WAL from its start at the next write once all of it is copied).
 * The loop's connection only counts WAL frames after each commit (its WAL
 * hook, which also turns the automatic checkpoint off) and wakes the
 * thread. The thread touches nothing but its connection and this struct.
 */
#include <pthread.h>
#include <stdlib.h>

#include "mailsnare/store.h"
#include "store_internal.h"

/* Wake the thread once the WAL holds this many frames (pages): the size
 * SQLite's own automatic checkpoint uses. */
#define CKPT_FRAMES 1000
/* SQLite starts the WAL over only at a write that finds all of it copied,
 * which a checkpoint racing a stream of large writes never gets to: past
 * this many frames (32 MB), large writes wait while a checkpoint runs
 * (store_checkpoint_behind), or the WAL would grow by all that is written. */
#define CKPT_BEHIND 8192

struct store_ckpt {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sqlite3 *db;               /* the thread's connection */
	bool want, stop, running;
	int frames;                /* in the WAL after the last commit (the loop's) */
};

static void *ckpt_main(void *arg)
{
	struct store_ckpt *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->want && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop)
			break;
		c->want = false;
		c->running = true;
		pthread_mutex_unlock(&c->mu);
		/* A failure (the file busy, I/O) leaves the pages in the WAL:
		 * the next wake-up tries again. */
		(void)sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE,
		    NULL, NULL);
		pthread_mutex_lock(&c->mu);
		c->running = false;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* The loop's connection, after each commit. */
static int ckpt_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store_ckpt *c = arg;

	(void)db;
	(void)name;
	c->frames = frames;
	if (frames < CKPT_FRAMES)
		return SQLITE_OK;
	pthread_mutex_lock(&c->mu);
	c->want = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return SQLITE_OK;
}

static void ckpt_free(struct store_ckpt *c)
{
	sqlite3_close(c->db);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int store_checkpoint_thread(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	const char *path;
	struct store_ckpt *c;

	if (base->be != &store_sqlite_backend || st->ckpt != NULL)
		return STORE_OK;
	path = sqlite3_db_filename(st->db, "main");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return store_set_err(st, STORE_FULL, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	/* A read first: a connection that has not opened the WAL yet takes
	 * a PASSIVE checkpoint as a no-op. */
	if (path == NULL || sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) !=
	    SQLITE_OK || pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
		ckpt_free(c);
		/* SQLite's own checkpoints go on, in the loop. */
		return store_set_err(st, STORE_ERR, "no checkpoint thread");
	}
	st->ckpt = c;
	sqlite3_wal_hook(st->db, ckpt_hook, c);
	return STORE_OK;
}

void store_ckpt_stop(struct sqlite_store *st)
{
	struct store_ckpt *c = st->ckpt;

	if (c == NULL)
		return;
	sqlite3_wal_hook(st->db, NULL, NULL);
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	ckpt_free(c);
	st->ckpt = NULL;
}

bool store_checkpoint_behind(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_ckpt *c = st->ckpt;
	bool behind;

	if (base->be != &store_sqlite_backend || c == NULL || c->frames < CKPT_BEHIND)
		return false;
	pthread_mutex_lock(&c->mu);
	behind = c->want || c->running;
	pthread_mutex_unlock(&c->mu);
	return behind;
}
