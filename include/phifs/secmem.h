/*
 * secmem.h — memory for secrets: locked in RAM (mlock), left out of core
 * dumps (MADV_DONTDUMP) and wiped on free.  Knows nothing of what the bytes
 * mean.  Thread-safe.
 */
#ifndef PHIFS_SECMEM_H
#define PHIFS_SECMEM_H

#include <stddef.h>

/*
 * Returns a zeroed buffer of at least n bytes, or NULL with errno EINVAL
 * (n is 0) or ENOMEM (n over 64 KiB, or no memory).  Small buffers share
 * locked pages, so thousands of 32-byte keys cost a few pages.  If the
 * memory-lock limit is reached the buffer is still returned, unlocked but
 * excluded from dumps; secmem_unlocked_count() tells how often.
 */
void *secmem_alloc(size_t n);

/* Wipes and releases a buffer from secmem_alloc().  NULL does nothing. */
void secmem_free(void *p);

/* Wipes n bytes in a way the compiler may not elide.  For stack copies. */
void secmem_wipe(void *p, size_t n);

/* How many allocations could not be locked in RAM (see secmem_alloc). */
size_t secmem_unlocked_count(void);

/*
 * Sets fn to be called once per process, the first time a buffer could not
 * be locked (at once if that has happened already), so that the program
 * can warn in its own way: this module knows nothing of logging.  fn runs
 * on the allocating thread, with no secmem lock held.  NULL removes it.
 */
void secmem_on_lock_failure(void (*fn)(void));

/*
 * Process hardening for programs that hold keys: not dumpable, not
 * ptrace-attachable by other users, no core files.  Returns 0 or -errno.
 */
int secmem_harden_process(void);

#endif
