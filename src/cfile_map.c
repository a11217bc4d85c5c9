/*
 * cfile_map.c — the hole maps of a sparse file: one sealed map per group
 * of blocks saying which are stored (docs/FORMAT.md), a small cache of
 * them per open file, and the switch from dense to sparse mode.  Knows
 * nothing of plaintext blocks or the header, beyond its sparse flag.
 */
#include "cfile_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/secmem.h"

/*
 * Hole maps cached per open file, one group (128 MiB) each, by group
 * number modulo: random I/O over a 256 MiB file went to two groups in
 * turn, and with one map cached it read and opened a map per request.
 */
#define MAP_SLOTS 8u

struct map_slot {
	bool valid;
	uint64_t group;
	uint8_t map[FORMAT_BLOCK_SIZE];
};

/* The cache slot of group g's map, or NULL on ENOMEM; under map_lock. */
static struct map_slot *map_slot(struct cfile *f, uint64_t g)
{
	if (!f->maps)
		f->maps = calloc(MAP_SLOTS, sizeof(*f->maps));
	return f->maps ? &f->maps[g % MAP_SLOTS] : NULL;
}

/* The map of group g, loaded into the cache.  Caller holds map_lock. */
static int map_load(struct cfile *f, uint64_t g, const uint8_t **map)
{
	struct map_slot *m = map_slot(f, g);
	uint8_t stored[SB];
	size_t got;
	int rc;

	if (!m)
		return -ENOMEM;
	if (m->valid && m->group == g) {
		*map = m->map;
		return 0;
	}
	m->valid = false;
	rc = cfile_pread_full(f->fd, stored, SB, format_map_offset(g), &got);
	if (!rc && got < SB)
		rc = -EBADMSG;	/* a map inside the size must be stored */
	if (!rc)
		rc = format_map_open(&f->fk, g, stored, m->map);
	if (rc == -EBADMSG)	/* named by the group's first block */
		(void)cfile_fault_at(f, g * GB, rc);
	if (!rc) {
		m->valid = true;
		m->group = g;
		*map = m->map;
	}
	return rc;
}

/* Copies the map of group g out for a reader. */
int cfile_map_copy(struct cfile *f, uint64_t g, uint8_t map[BS])
{
	const uint8_t *cached;
	int rc;

	pthread_mutex_lock(&f->map_lock);
	rc = map_load(f, g, &cached);
	if (!rc)
		memcpy(map, cached, BS);
	pthread_mutex_unlock(&f->map_lock);
	return rc;
}

/* Seals and writes map[] as the map of group g, and caches it. */
static int map_store(struct cfile *f, uint64_t g, const uint8_t map[BS])
{
	uint8_t stored[SB], nonce[CRYPTO_GCM_NONCE_LEN];
	struct map_slot *m;
	size_t put;
	int rc;

	rc = crypto_nonce(nonce, sizeof(nonce));
	if (!rc)
		rc = format_map_seal(&f->fk, g, nonce, map, stored);
	/* Maps are in force on disk only once a committed header says so. */
	if (!rc)
		rc = cfile_put_blocks(f, FORMAT_MAP_INDEX(g), 1, stored,
				format_map_offset(g),
				(f->hdr.flags & FORMAT_F_SPARSE) &&
				cfile_committed(f, g * GB) ? 1u : 0u, &put);
	pthread_mutex_lock(&f->map_lock);
	m = map_slot(f, g);
	if (m) {	/* without a cache, the next use reads it back */
		m->valid = !rc;
		m->group = g;
		if (!rc)
			memcpy(m->map, map, BS);
	}
	pthread_mutex_unlock(&f->map_lock);
	return rc;
}

/*
 * Sets (on) or clears the bits of blocks [from, to), all in one group, and
 * writes the map if it changed.  Caller holds lock exclusively.
 */
int cfile_map_mark(struct cfile *f, uint64_t from, uint64_t to, bool on)
{
	uint64_t g = from / GB;
	uint8_t map[BS];
	bool changed = false;
	int rc;

	rc = cfile_map_copy(f, g, map);
	for (uint64_t i = from; !rc && i < to; i++) {
		if (format_map_test(map, i) != on) {
			format_map_set(map, i, on);
			changed = true;
		}
	}
	if (!rc && changed)
		rc = map_store(f, g, map);
	return rc;
}

/*
 * Makes blocks [from, to) holes in the maps, writing fresh maps for groups
 * that start at or after `from`: whatever they held lay past the size.
 */
int cfile_maps_clear(struct cfile *f, uint64_t from, uint64_t to)
{
	static const uint8_t zero_map[BS];
	int rc = 0;

	for (uint64_t i = from; !rc && i < to;) {
		uint64_t g = i / GB, end = (g + 1) * GB;

		if (i % GB)
			rc = cfile_map_mark(f, i, end < to ? end : to, false);
		else
			rc = map_store(f, g, zero_map);
		i = end;
	}
	return rc;
}

/*
 * Switches a dense file to sparse mode: maps for every group up to block
 * `to`, marking the blocks below the current size as stored.  The header
 * that says "sparse" is written later and only points at maps on disk.
 */
int cfile_go_sparse(struct cfile *f, uint64_t to)
{
	uint64_t nb = format_nblocks(f->size);
	uint8_t map[BS];
	int rc = 0;

	for (uint64_t g = 0; !rc && g * GB < to; g++) {
		memset(map, 0, BS);
		for (uint64_t i = g * GB; i < nb && i < (g + 1) * GB; i++)
			format_map_set(map, i, true);
		rc = map_store(f, g, map);
	}
	if (!rc) {
		f->flags |= FORMAT_F_SPARSE;
		f->dirty = true;
	}
	return rc;
}

void cfile_maps_free(struct cfile *f)
{
	if (!f->maps)
		return;
	secmem_wipe(f->maps, MAP_SLOTS * sizeof(*f->maps));
	free(f->maps);
	f->maps = NULL;
}
