/*
 * cfile_map.c — the hole maps of a sparse file (docs/FORMAT.md, "Holes"
 * and "Map tree"): one sealed map per group of blocks saying which are
 * stored; in a TREE file only groups that hold data have one, and two
 * levels of sealed nodes above the maps say which exist.  A small cache of
 * them per open file, and the switch from dense to sparse mode.  Knows
 * nothing of plaintext blocks or the header, beyond its flags.
 */
#include "cfile_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/secmem.h"

#define FANOUT FORMAT_TREE_FANOUT

/*
 * Nodes cached per open file, by level and index modulo: maps (one group,
 * 128 MiB, each) in MAP_SLOTS, since random I/O over a 256 MiB file went to
 * two groups in turn and with one map cached it read and opened a map per
 * request; the levels above cover 4 TiB or more each and need few.
 */
#define MAP_SLOTS 8u
#define UPPER_SLOTS 2u
#define CACHE_SLOTS (MAP_SLOTS + (FORMAT_TREE_LEVELS - 1) * UPPER_SLOTS)

struct map_slot {
	bool valid;
	unsigned level;
	uint64_t index;
	uint8_t map[FORMAT_BLOCK_SIZE];
};

/* The highest level of the file's maps: the maps alone, or a tree. */
static unsigned top_level(const struct cfile *f)
{
	return f->flags & FORMAT_F_TREE ? FORMAT_TREE_LEVELS - 1 : 0;
}

/* Data blocks one node of `level` covers. */
static uint64_t span(unsigned level)
{
	uint64_t s = GB;

	while (level--)
		s *= FANOUT;
	return s;
}

/* The cache slot of node (level, i), or NULL on ENOMEM; under map_lock. */
static struct map_slot *map_slot(struct cfile *f, unsigned level, uint64_t i)
{
	if (!f->maps)
		f->maps = calloc(CACHE_SLOTS, sizeof(*f->maps));
	if (!f->maps)
		return NULL;
	if (level == 0)
		return &f->maps[i % MAP_SLOTS];
	return &f->maps[MAP_SLOTS + (level - 1) * UPPER_SLOTS +
			i % UPPER_SLOTS];
}

/* Node (level, i), loaded into the cache.  Caller holds map_lock. */
static int node_load(struct cfile *f, unsigned level, uint64_t i,
		     const uint8_t **node)
{
	struct map_slot *m = map_slot(f, level, i);
	uint8_t stored[SB];
	size_t got;
	int rc;

	if (!m)
		return -ENOMEM;
	if (m->valid && m->level == level && m->index == i) {
		*node = m->map;
		return 0;
	}
	m->valid = false;
	rc = cfile_pread_full(f->fd, stored, SB,
			format_node_offset(f->flags, level, i), &got);
	if (!rc && got < SB)
		rc = -EBADMSG;	/* a node in force must be stored */
	if (!rc)
		rc = format_node_open(&f->fk, level, i, stored, m->map);
	if (rc == -EBADMSG)	/* named by the first block it covers */
		(void)cfile_fault_at(f, i * span(level), rc);
	if (!rc) {
		m->valid = true;
		m->level = level;
		m->index = i;
		*node = m->map;
	}
	return rc;
}

/*
 * Copies node (level, i) into out.  In a tree, a node whose parent's bit is
 * clear does not exist: out is zeros (all holes) and *present false.  Top
 * nodes below the size always exist.  Caller holds map_lock.
 */
static int node_get(struct cfile *f, unsigned level, uint64_t i,
		    uint8_t out[BS], bool *present)
{
	uint64_t first = i * span(level);
	const uint8_t *node;
	int rc;

	for (unsigned l = top_level(f); l > level; l--) {
		rc = node_load(f, l, first / span(l), &node);
		if (rc)
			return rc;
		if (!format_map_test(node, first / span(l - 1))) {
			memset(out, 0, BS);
			*present = false;
			return 0;
		}
	}
	rc = node_load(f, level, i, &node);
	if (!rc)
		memcpy(out, node, BS);
	*present = !rc;
	return rc;
}

static int node_copy(struct cfile *f, unsigned level, uint64_t i,
		     uint8_t out[BS], bool *present)
{
	int rc;

	pthread_mutex_lock(&f->map_lock);
	rc = node_get(f, level, i, out, present);
	pthread_mutex_unlock(&f->map_lock);
	return rc;
}

/* Copies the map of group g out for a reader: zeros if it has none. */
int cfile_map_copy(struct cfile *f, uint64_t g, uint8_t map[BS])
{
	bool present;

	return node_copy(f, 0, g, map, &present);
}

/* Seals and writes node (level, i), and caches it. */
static int node_store(struct cfile *f, unsigned level, uint64_t i,
		      const uint8_t node[BS])
{
	uint8_t stored[SB], nonce[CRYPTO_GCM_NONCE_LEN];
	struct map_slot *m;
	size_t put;
	int rc;

	rc = crypto_nonce(nonce, sizeof(nonce));
	if (!rc)
		rc = format_node_seal(&f->fk, level, i, nonce, node, stored);
	/* Nodes are in force on disk only once a committed header says so. */
	if (!rc)
		rc = cfile_put_blocks(f, FORMAT_NODE_INDEX(level, i), 1, stored,
				format_node_offset(f->flags, level, i),
				(f->hdr.flags & FORMAT_F_SPARSE) &&
				cfile_committed(f, i * span(level)) ? 1u : 0u,
				&put);
	pthread_mutex_lock(&f->map_lock);
	m = map_slot(f, level, i);
	if (m) {	/* without a cache, the next use reads it back */
		m->valid = !rc;
		m->level = level;
		m->index = i;
		if (!rc)
			memcpy(m->map, node, BS);
	}
	pthread_mutex_unlock(&f->map_lock);
	return rc;
}

/*
 * Sets the bit of node `child` (of level - 1) in its parent at `level`,
 * which is made if the tree had none, and then linked in itself: each node
 * is written before the bit that points at it.
 */
static int tree_link(struct cfile *f, unsigned level, uint64_t child)
{
	uint64_t i = child / FANOUT;
	uint8_t node[BS];
	bool present;
	int rc;

	rc = node_copy(f, level, i, node, &present);
	if (rc || format_map_test(node, child))
		return rc;
	format_map_set(node, child, true);
	rc = node_store(f, level, i, node);
	if (!rc && !present)
		rc = tree_link(f, level + 1, i);
	return rc;
}

/*
 * Sets (on) or clears the bits of blocks [from, to), all in one group, and
 * writes the map if it changed; in a tree, a group's first stored block
 * gives it a map.  Caller holds lock exclusively.
 */
int cfile_map_mark(struct cfile *f, uint64_t from, uint64_t to, bool on)
{
	uint64_t g = from / GB;
	uint8_t map[BS];
	bool changed = false, present;
	int rc;

	rc = node_copy(f, 0, g, map, &present);
	for (uint64_t i = from; !rc && i < to; i++) {
		if (format_map_test(map, i) != on) {
			format_map_set(map, i, on);
			changed = true;
		}
	}
	if (rc || !changed)
		return rc;
	rc = node_store(f, 0, g, map);
	if (!rc && !present)
		rc = tree_link(f, 1, g);
	return rc;
}

/*
 * Makes blocks [from, to) holes below node (level, i), which exists.  A
 * child wholly inside the range, or wholly past the size (whatever it held
 * is garbage), loses its bit; one in part is cleared in turn.  A top node
 * past the size, or wholly inside the range, is written fresh, empty.
 */
static int node_clear(struct cfile *f, unsigned level, uint64_t i,
		      uint64_t from, uint64_t to)
{
	static const uint8_t empty[BS];
	uint64_t nb = format_nblocks(f->size), start = i * span(level);
	uint64_t end = start + span(level), csp = level ? span(level - 1) : 1;
	uint64_t lo = from > start ? from : start, hi = to < end ? to : end;
	uint8_t node[BS];
	bool present, changed = false;
	int rc;

	if (start >= nb || (from <= start && end <= to))
		return node_store(f, level, i, empty);
	rc = node_copy(f, level, i, node, &present);
	for (uint64_t c = (lo - start) / csp; !rc && start + c * csp < hi;
	     c++) {
		uint64_t cs = start + c * csp;

		if (!format_map_test(node, c))
			continue;
		if (level == 0 || cs >= nb || (from <= cs && cs + csp <= to)) {
			format_map_set(node, c, false);
			changed = true;
		} else {
			rc = node_clear(f, level - 1, i * FANOUT + c, from, to);
		}
	}
	if (!rc && changed)
		rc = node_store(f, level, i, node);
	return rc;
}

/* Makes blocks [from, to) holes in the maps; lock exclusive. */
int cfile_maps_clear(struct cfile *f, uint64_t from, uint64_t to)
{
	unsigned top = top_level(f);
	uint64_t sp = span(top);
	int rc = 0;

	for (uint64_t i = from / sp; !rc && i * sp < to; i++)
		rc = node_clear(f, top, i, from, to);
	return rc;
}

/* Sparse mode with a map for every group up to block `to` (no tree). */
static int go_flat(struct cfile *f, uint64_t nb, uint64_t to)
{
	uint8_t map[BS];
	int rc = 0;

	for (uint64_t g = 0; !rc && g * GB < to; g++) {
		memset(map, 0, BS);
		for (uint64_t i = g * GB; i < nb && i < (g + 1) * GB; i++)
			format_map_set(map, i, true);
		rc = node_store(f, 0, g, map);
	}
	return rc;
}

/* Sparse mode with a tree, the nb stored blocks all in group 0: their map
 * and its parents, and every top node up to block `to`. */
static int go_tree(struct cfile *f, uint64_t nb, uint64_t to)
{
	uint8_t node[BS] = { 0 };
	int rc = 0;

	if (nb) {
		for (uint64_t i = 0; i < nb; i++)
			format_map_set(node, i, true);
		rc = node_store(f, 0, 0, node);
		memset(node, 0, BS);
		format_map_set(node, 0, true);
		for (unsigned l = 1; !rc && l < FORMAT_TREE_LEVELS; l++)
			rc = node_store(f, l, 0, node);
	}
	memset(node, 0, BS);
	for (uint64_t j = 1; !rc && j * span(FORMAT_TREE_LEVELS - 1) < to; j++)
		rc = node_store(f, FORMAT_TREE_LEVELS - 1, j, node);
	if (!rc && !nb)
		rc = node_store(f, FORMAT_TREE_LEVELS - 1, 0, node);
	return rc;
}

/*
 * Switches a dense file to sparse mode up to block `to`.  A file whose
 * blocks all lie in group 0, where both layouts agree, gets a tree, whose
 * cost follows the data; a larger one keeps its blocks where they are and
 * gets a map for every group.  The header that says "sparse" is written
 * later and only points at maps on disk.
 */
int cfile_go_sparse(struct cfile *f, uint64_t to)
{
	uint64_t nb = format_nblocks(f->size);
	uint16_t old = f->flags;
	bool tree = nb <= GB && to <= format_nblocks(FORMAT_MAX_SIZE_TREE);
	int rc;

	cfile_maps_forget(f);	/* nodes cached under another layout */
	f->flags |= FORMAT_F_SPARSE | (tree ? FORMAT_F_TREE : 0);
	rc = tree ? go_tree(f, nb, to) : go_flat(f, nb, to);
	if (rc)
		f->flags = old;
	else
		f->dirty = true;
	return rc;
}

void cfile_maps_forget(struct cfile *f)
{
	pthread_mutex_lock(&f->map_lock);
	if (f->maps)
		secmem_wipe(f->maps, CACHE_SLOTS * sizeof(*f->maps));
	pthread_mutex_unlock(&f->map_lock);
}

void cfile_maps_free(struct cfile *f)
{
	if (!f->maps)
		return;
	secmem_wipe(f->maps, CACHE_SLOTS * sizeof(*f->maps));
	free(f->maps);
	f->maps = NULL;
}
