/*
 * prefetch.c — read-ahead across the files of a folder.
 *
 * A stream follows one folder being read in listing order.  A cold open
 * starts one: the thread finds the file in the listing and asks the disk
 * for the start of the WINDOW regular files after it (posix_fadvise
 * WILLNEED queues the reads and returns).  It remembers where it stopped and
 * marks the file halfway through the window; when the reader opens the
 * mark, the next window is asked, so the disk stays ahead of the reader
 * without being asked twice for the same file.
 */
#include "phifs/prefetch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW 16u	/* files asked ahead at a time */
#define STREAMS 16u	/* folders followed at once */

struct stream {
	dev_t dev;
	ino_t ino;
	bool used;
	bool busy;		/* its job is queued or running */
	long cookie;		/* telldir() after the last file asked */
	char mark[NAME_MAX + 1];	/* "" when there is nothing to extend */
	unsigned long last;	/* for reuse of the least recent */
};

struct job {
	struct stream *s;
	int dirfd;		/* the folder, read-only; the thread closes it */
	long cookie;		/* go on from here, or -1: after `after` */
	char after[NAME_MAX + 1];
};

struct prefetch {
	size_t bytes;
	pthread_mutex_t lock;	/* protects all below */
	pthread_cond_t cond;
	struct stream streams[STREAMS];
	struct job queue[STREAMS];	/* one job a stream at most */
	unsigned head, count;
	unsigned long clock;
	_Atomic unsigned marked;	/* streams with a mark: a quick no */
	bool stop;
	pthread_t thread;
};

static bool is_regular(DIR *d, const struct dirent *e)
{
	struct stat st;

	if (e->d_type != DT_UNKNOWN)
		return e->d_type == DT_REG;
	return !fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) &&
	       S_ISREG(st.st_mode);
}

/* Asks the disk for the start of one file, without waiting for it. */
static void ask(struct prefetch *p, DIR *d, const char *name)
{
	int fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return;
	(void)posix_fadvise(fd, 0, (off_t)p->bytes, POSIX_FADV_WILLNEED);
	close(fd);
}

/* Runs one job: *cookie is where it stopped, mark the file whose open
 * should ask for more ("" for none). */
static void run(struct prefetch *p, struct job *j, long *cookie, char *mark)
{
	DIR *d = fdopendir(j->dirfd);
	struct dirent *e;
	unsigned n = 0;

	mark[0] = '\0';
	if (!d) {
		close(j->dirfd);
		return;
	}
	if (j->cookie >= 0) {
		seekdir(d, j->cookie);
	} else {
		while ((e = readdir(d)) && strcmp(e->d_name, j->after))
			;
		if (!e)
			goto out;
	}
	while (n < WINDOW && (e = readdir(d))) {
		if (!is_regular(d, e))
			continue;
		ask(p, d, e->d_name);
		if (++n == WINDOW / 2)
			snprintf(mark, NAME_MAX + 1, "%s", e->d_name);
	}
	/* A window cut short by the end of the folder: nothing to extend. */
	if (n < WINDOW)
		mark[0] = '\0';
	*cookie = telldir(d);
out:
	closedir(d);
}

static void *worker(void *arg)
{
	struct prefetch *p = arg;
	char mark[NAME_MAX + 1];

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct job j;
		long cookie = -1;

		while (!p->stop && !p->count)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		j = p->queue[p->head];
		p->head = (p->head + 1) % STREAMS;
		p->count--;
		pthread_mutex_unlock(&p->lock);
		run(p, &j, &cookie, mark);
		pthread_mutex_lock(&p->lock);
		j.s->cookie = cookie;
		memcpy(j.s->mark, mark, sizeof(mark));
		if (mark[0])
			p->marked++;
		j.s->busy = false;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int prefetch_new(size_t bytes, struct prefetch **out)
{
	struct prefetch *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->bytes = bytes;
	rc = -pthread_mutex_init(&p->lock, NULL);
	if (!rc && (rc = -pthread_cond_init(&p->cond, NULL)))
		pthread_mutex_destroy(&p->lock);
	if (!rc && (rc = -pthread_create(&p->thread, NULL, worker, p))) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
	}
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void prefetch_free(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	for (; p->count; p->count--, p->head = (p->head + 1) % STREAMS)
		close(p->queue[p->head].dirfd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* The stream of folder (dev, ino), or a new one in place of the least
 * recently used idle stream, or NULL; under lock. */
static struct stream *stream_of(struct prefetch *p, dev_t dev, ino_t ino,
				bool make)
{
	struct stream *lru = NULL;

	for (unsigned k = 0; k < STREAMS; k++) {
		struct stream *s = &p->streams[k];

		if (s->used && s->dev == dev && s->ino == ino)
			return s;
		if (!s->busy && (!lru || !s->used || s->last < lru->last))
			lru = s;
	}
	if (!make || !lru)
		return NULL;
	if (lru->mark[0])
		p->marked--;
	*lru = (struct stream){ .dev = dev, .ino = ino, .used = true };
	return lru;
}

void prefetch_opened(struct prefetch *p, int dirfd, dev_t dev, ino_t ino,
		     const char *name, bool cold)
{
	struct job j = { .cookie = -1 };
	struct stream *s;

	if (!p || (!cold && !p->marked) || strlen(name) > NAME_MAX)
		return;
	pthread_mutex_lock(&p->lock);
	s = stream_of(p, dev, ino, cold);
	if (!s || s->busy) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (s->mark[0] && !strcmp(s->mark, name))
		j.cookie = s->cookie;	/* the reader is halfway: go on */
	else if (cold)
		memcpy(j.after, name, strlen(name) + 1);	/* start here */
	else {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (s->mark[0])
		p->marked--;
	s->mark[0] = '\0';
	s->busy = true;
	s->last = ++p->clock;
	pthread_mutex_unlock(&p->lock);

	/* The handle may be O_PATH, which cannot list: open the folder. */
	j.s = s;
	j.dirfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pthread_mutex_lock(&p->lock);
	if (j.dirfd < 0) {
		s->busy = false;
	} else {
		p->queue[(p->head + p->count) % STREAMS] = j;
		p->count++;	/* never full: one job per busy stream */
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}
