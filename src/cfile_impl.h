/*
 * cfile_impl.h — what the parts of one encrypted file share (cfile.c: the
 * header, size tags, open, and plaintext reads, writes, truncates and
 * fallocate; cfile_block.c: blocks sealed and opened; cfile_map.c: hole
 * maps; cfile_store.c: how stored blocks reach the backing file, and the
 * journal).  Private to them; the rules that keep crash states readable
 * open cfile.c.
 */
#ifndef PHIFS_CFILE_IMPL_H
#define PHIFS_CFILE_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phifs/cfile.h"

/* Blocks sealed into one buffer and moved with one syscall. */
#define CHUNK_BLOCKS 64u

#define BS FORMAT_BLOCK_SIZE
#define SB FORMAT_STORED_BLOCK
#define GB FORMAT_GROUP_BLOCKS

/*
 * Lock order: lock, then map_lock.  `lock` is shared by readers and held
 * exclusively by anything that changes the file; it protects size, flags,
 * attrs, attrs_known, hdr, slot, dirty and jfd.  map_lock protects the map cache, which
 * readers fill too.  fd, vol and fk never change after open.
 */
struct cfile {
	int fd;
	const struct cfile_volume *vol;
	struct format_fkeys fk;
	pthread_rwlock_t lock;
	bool writable;			/* fd open for writing */
	enum { TAG_UNKNOWN, TAG_ABSENT, TAG_SET } tag;	/* size tag on fd */
	int jfd;			/* journal, -1 until first needed */
	uint8_t *jmap;			/* jfd mapped whole, or NULL */
	unsigned jwrites;		/* records written through jfd */
	bool jpending;			/* its record must outlive us */
	struct format_header hdr;	/* as last committed */
	int slot;			/* slot holding hdr */
	uint64_t size;
	uint16_t flags;			/* never FORMAT_F_ATTRS: see attrs */
	/* Mode, owner and group as the header authenticates them; a header
	 * without FORMAT_F_ATTRS (older phifs) has none until its next
	 * commit, which takes the backing file's (trust on first use). */
	struct format_attrs attrs;
	bool attrs_known;
	bool dirty;			/* size or flags differ from hdr */
	pthread_mutex_t map_lock;
	struct map_slot *maps;		/* cfile_map.c's, from the first map */
	_Atomic int64_t fault;		/* cfile_fault's block, or -1 */
	struct cfile_note note;		/* set at open, then read only */
	_Atomic bool note_taken;
};

/* Remembers that block idx did not authenticate; returns rc. */
static inline int cfile_fault_at(struct cfile *f, uint64_t idx, int rc)
{
	f->fault = (int64_t)idx;
	return rc;
}

/* Is the file in sparse mode (hole maps)?  Under lock. */
static inline bool cfile_sparse(const struct cfile *f)
{
	return f->flags & FORMAT_F_SPARSE;
}

/* Does block `index` hold data that a crash must not lose?  Under lock. */
static inline bool cfile_committed(const struct cfile *f, uint64_t index)
{
	return index < format_nblocks(f->hdr.size);
}

/* How many of the n blocks from b0 on are committed: always a prefix. */
static inline unsigned cfile_committed_of(const struct cfile *f, uint64_t b0,
					  uint64_t n)
{
	uint64_t nb = format_nblocks(f->hdr.size);

	if (b0 >= nb)
		return 0;
	return (unsigned)(nb - b0 < n ? nb - b0 : n);
}

/* --- cfile.c --- */

/* cfile_create with a given file ID (or NULL: a random one) and DEK
 * generation. */
int cfile_create_as(int fd, const struct cfile_volume *vol,
		    const uint8_t *file_id, uint32_t dek_gen, struct cfile **out);
/*
 * Writes plaintext [off, off + len) (src, or zeros if NULL), chunk by
 * chunk, growing the size over what was written; map bits set in sparse
 * mode.  The bytes written, or -errno if none were; lock exclusive.
 */
ssize_t cfile_write_range(struct cfile *f, const uint8_t *src, size_t len,
			  uint64_t off);

/* --- cfile_store.c --- */

/* This thread's CHUNK_BLOCKS stored blocks of scratch, or NULL; no lock. */
uint8_t *cfile_scratch(void);
/* Reads until len or end of file; *got says how far it came.  No lock. */
int cfile_pread_full(int fd, void *buf, size_t len, uint64_t off,
		     size_t *got);
/* Writes n sealed blocks at off, the first jn journaled; lock exclusive. */
int cfile_put_blocks(struct cfile *f, uint64_t first, unsigned n,
		     const uint8_t *buf, uint64_t off, unsigned jn,
		     size_t *put);
/* Reserves the journal's space while the file is open; lock exclusive. */
int cfile_journal_reserve(struct cfile *f);
/* Voids the journal's record, before a shrink; lock exclusive. */
int cfile_journal_void(struct cfile *f);
/* Finishes a rewrite a kill left half done; at open, before f is shared. */
int cfile_journal_replay(struct cfile *f);
/* Unmaps and closes the journal, removing it unless still needed; at free. */
void cfile_journal_close(struct cfile *f);

/* --- cfile_map.c --- */

/* Copies group g's hole map into map (zeros for a group a map tree says
 * has none); lock held, takes map_lock. */
int cfile_map_copy(struct cfile *f, uint64_t g, uint8_t map[BS]);
/* Sets or clears the map bits of [from, to), one group; lock exclusive. */
int cfile_map_mark(struct cfile *f, uint64_t from, uint64_t to, bool on);
/* Makes blocks [from, to) holes in the maps; lock exclusive. */
int cfile_maps_clear(struct cfile *f, uint64_t from, uint64_t to);
/* Switches a dense file to sparse mode up to block `to`; lock exclusive. */
int cfile_go_sparse(struct cfile *f, uint64_t to);
/* Drops every cached map, after the layout or the maps on disk changed
 * behind the cache; lock exclusive. */
void cfile_maps_forget(struct cfile *f);
/* Wipes and frees the map cache; at free, when f is no longer shared. */
void cfile_maps_free(struct cfile *f);

/* --- cfile_block.c --- */

/* Seals blocks [b0, b0 + n) with plaintext [off, off + len) from src (or
 * zeros) into out, on two threads; lock exclusive. */
int cfile_seal_blocks(struct cfile *f, uint64_t b0, uint64_t n,
		      const uint8_t *src, uint64_t off, size_t len,
		      uint8_t *out);
/* Opens n stored blocks from b0 in buf (got bytes) into dst, plaintext
 * [pos, end), on two threads; lock held. */
int cfile_open_blocks(struct cfile *f, uint64_t b0, uint64_t n,
		      const uint8_t *buf, size_t got, uint8_t *dst,
		      uint64_t pos, uint64_t end);

#endif
