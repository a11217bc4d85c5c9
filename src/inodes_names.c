/*
 * inodes_names.c — the inode table's names: every name of each inode, in a
 * hash table by (folder, name), kept through lookups, renames and
 * removals, and the paths they make up to the root.  Knows nothing of
 * FUSE or the backing directory's contents.
 */
#include "inodes_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH (PATH_MAX / 2)	/* "/a" per level at the least */

static unsigned name_bucket(const struct inode *parent, const char *name,
			    unsigned bits)
{
	uint64_t h = (uint64_t)(uintptr_t)parent * 0x100000001B3ULL;

	for (; *name; name++)		/* FNV-1a */
		h = (h ^ (unsigned char)*name) * 0x100000001B3ULL;
	return (unsigned)((h * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
}

static void link_rehash(struct inodes *t)
{
	unsigned old = 1u << t->lbits;
	struct ilink **was = t->links, **n = calloc(2 * (size_t)old,
						    sizeof(*n));

	if (!n)
		return;
	for (unsigned b = 0; b < old; b++) {
		while (was[b]) {
			struct ilink *l = was[b];
			unsigned nb = name_bucket(l->parent, l->name,
						  t->lbits + 1);

			was[b] = l->hnext;
			l->hnext = n[nb];
			n[nb] = l;
		}
	}
	free(was);
	t->links = n;
	t->lbits++;
}

static struct ilink **link_slot(struct inodes *t, const struct inode *parent,
				const char *name)
{
	struct ilink **pp = &t->links[name_bucket(parent, name, t->lbits)];

	while (*pp && ((*pp)->parent != parent || strcmp((*pp)->name, name)))
		pp = &(*pp)->hnext;
	return pp;
}

/* Forgets one name; its folder may then go.  Under lock. */
void inodes_unlink_name(struct inodes *t, struct ilink *l,
			struct inode **dead)
{
	struct ilink **pp = &t->links[name_bucket(l->parent, l->name,
						  t->lbits)];
	struct inode *parent = l->parent;

	while (*pp != l)	/* by address: a stale twin may share its key */
		pp = &(*pp)->hnext;
	*pp = l->hnext;
	for (pp = &l->child->names; *pp != l; pp = &(*pp)->cnext)
		;
	*pp = l->cnext;
	t->nlinks--;
	parent->children--;
	free(l);
	inodes_drop(t, parent, dead);
}

/*
 * Adds name in parent to i, l being preallocated for it (taken over).  A
 * name that meant another inode (changed behind our back) goes, after
 * the new one is in, so that the folder stays.  Under lock.
 */
void inodes_add_name(struct inodes *t, struct inode *i, struct inode *parent,
		     struct ilink *l, struct inode **dead)
{
	struct ilink *stale = *link_slot(t, parent, l->name), **tail;
	unsigned b = name_bucket(parent, l->name, t->lbits);

	if (stale && stale->child == i) {
		free(l);
		return;
	}
	l->parent = parent;
	l->child = i;
	l->cnext = NULL;
	for (tail = &i->names; *tail; tail = &(*tail)->cnext)
		;
	*tail = l;
	parent->children++;
	l->hnext = t->links[b];
	t->links[b] = l;
	t->nlinks++;
	if (stale)
		inodes_unlink_name(t, stale, dead);
	if (t->nlinks > 2u << t->lbits)
		link_rehash(t);
}

struct ilink *inodes_new_link(const char *name)
{
	size_t len = strlen(name);
	struct ilink *l = malloc(sizeof(*l) + len + 1);

	if (l)
		memcpy(l->name, name, len + 1);
	return l;
}

/* --- names --- */

void inodes_unlinked(struct inodes *t, struct inode *parent,
		     const char *name)
{
	struct inode *dead = NULL;
	struct ilink *l;

	pthread_mutex_lock(&t->lock);
	l = *link_slot(t, parent, name);
	if (l)
		inodes_unlink_name(t, l, &dead);
	pthread_mutex_unlock(&t->lock);
	inodes_free_dead(dead);
}

static void hold(struct inode *i)
{
	if (i)
		i->pins++;
}

static void let_go(struct inodes *t, struct inode *i, struct inode **dead)
{
	if (i) {
		i->pins--;
		inodes_drop(t, i, dead);
	}
}

/* Names l (taken over) for i, or frees it without i; under lock. */
static void name_or_free(struct inodes *t, struct inode *i,
			 struct inode *parent, struct ilink *l,
			 struct inode **dead)
{
	if (i && l)
		inodes_add_name(t, i, parent, l, dead);
	else
		free(l);
}

/*
 * Renaming one name of a file over another of the same file does nothing
 * (POSIX); otherwise the target's name goes and the source's moves, or
 * with RENAME_EXCHANGE the two swap.  Everything involved is held, so no
 * folder goes half-way.  Out of memory, a name is lost rather than wrong.
 */
void inodes_renamed(struct inodes *t, struct inode *p, const char *name,
		    struct inode *q, const char *newname, unsigned flags)
{
	struct ilink *to_new = inodes_new_link(newname);
	struct ilink *to_old = inodes_new_link(name);
	struct inode *ac, *bc, *dead = NULL;
	struct ilink *a, *b;

	pthread_mutex_lock(&t->lock);
	a = *link_slot(t, p, name);
	b = *link_slot(t, q, newname);
	ac = a ? a->child : NULL;
	bc = b ? b->child : NULL;
	if (ac && ac == bc && !(flags & RENAME_EXCHANGE)) {
		free(to_new);
		free(to_old);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	hold(p), hold(q), hold(ac), hold(bc);
	if (a)
		inodes_unlink_name(t, a, &dead);
	if (b && b != a)
		inodes_unlink_name(t, b, &dead);
	name_or_free(t, ac, q, to_new, &dead);
	name_or_free(t, flags & RENAME_EXCHANGE ? bc : NULL, p, to_old, &dead);
	let_go(t, bc, &dead), let_go(t, ac, &dead);
	let_go(t, q, &dead), let_go(t, p, &dead);
	pthread_mutex_unlock(&t->lock);
	inodes_free_dead(dead);
}

/*
 * Writes the path of name l (its folders' first names up to the root)
 * into buf, from the end, then moves it to the start; under lock.  Its
 * length, -ENOENT when a folder on the way has no name known (removed),
 * -ENAMETOOLONG, or -ELOOP should a folder ever hold itself.
 */
static ssize_t path_of(const struct ilink *l, char *buf, size_t len)
{
	size_t at = len, depth = 0;

	if (!len)
		return -ENAMETOOLONG;
	buf[--at] = '\0';
	for (;;) {
		size_t nl = strlen(l->name);

		if (at < nl + 1)
			return -ENAMETOOLONG;
		at -= nl;
		memcpy(buf + at, l->name, nl);
		buf[--at] = '/';
		if (l->parent->root)
			break;
		if (!(l = l->parent->names))
			return -ENOENT;
		if (++depth == MAX_DEPTH)
			return -ELOOP;
	}
	memmove(buf, buf + at, len - at);
	return (ssize_t)(len - at - 1);
}

int inodes_path(struct inodes *t, struct inode *i, char *buf, size_t len)
{
	ssize_t n;

	if (i->root) {
		if (len < 2)
			return -ENAMETOOLONG;
		strcpy(buf, "/");
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	n = i->names ? path_of(i->names, buf, len) : -ENOENT;
	pthread_mutex_unlock(&t->lock);
	return n < 0 ? (int)n : 0;
}

int inodes_path_of(struct inodes *t, dev_t dev, ino_t ino, char *buf,
		   size_t len)
{
	struct inode *i;
	ssize_t n = -ENOENT;

	pthread_mutex_lock(&t->lock);
	i = inodes_find(t, dev, ino);
	if (i && i->root)
		n = len < 2 ? -ENAMETOOLONG : (strcpy(buf, "/"), 1);
	else if (i && i->names)
		n = path_of(i->names, buf, len);
	pthread_mutex_unlock(&t->lock);
	return n < 0 ? (int)n : 0;
}

/*
 * One buffer on the stack and fn called under the lock: the paths are one
 * consistent snapshot (a rename cannot slip a name past the walk), and a
 * decision per request allocates nothing.  fn must not call back into the
 * table; the policy's decision, its one user, takes no lock at all.
 */
int inodes_paths(struct inodes *t, struct inode *i,
		 int (*fn)(void *arg, const char *path), void *arg)
{
	char buf[PATH_MAX];
	size_t n = 0;
	int rc = 0;

	if (i->root)
		return fn(arg, "/");
	pthread_mutex_lock(&t->lock);
	for (struct ilink *l = i->names; l && !rc; l = l->cnext) {
		ssize_t len = path_of(l, buf, sizeof(buf));

		if (len >= 0) {
			n++;
			rc = fn(arg, buf);
		} else if (len != -ENOENT) {	/* a name in a lost folder */
			rc = (int)len;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc ? rc : n ? 0 : -ENOENT;
}

int inodes_pin_parent(struct inodes *t, struct inode *i,
		      struct inode **parent, char name[NAME_MAX + 1])
{
	struct ilink *l;
	int fd = -EAGAIN;

	pthread_mutex_lock(&t->lock);
	l = i->names;
	if (l && l->parent->fd >= 0 && strlen(l->name) <= NAME_MAX) {
		l->parent->pins++;
		fd = l->parent->fd;
		*parent = l->parent;
		strcpy(name, l->name);
	}
	pthread_mutex_unlock(&t->lock);
	return fd;
}
