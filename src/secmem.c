/*
 * secmem.c — locked, undumpable, wiped-on-free buffers for secrets.  Small
 * buffers are carved from a pool of mmap'd slabs, one size class per slab,
 * with a free list per class under one mutex; each buffer is preceded by a
 * 16-byte header naming its class, so secmem_free needs no look-up.  Buffers
 * above the largest class get their own mapping.  Slabs are never returned
 * to the system: secrets come and go, the pool stays small.  This file knows
 * nothing of what the bytes mean, nor of OpenSSL.
 */
#include "phifs/secmem.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define SECMEM_MAX	(64 * 1024)
#define SECMEM_MAGIC	0x5345434dU	/* "SECM" */
#define SECMEM_SLAB	(16 * 1024)
#define HDR_LEN		sizeof(struct hdr)

/* Chunk sizes, header included: 64 holds a struct crypto_key. */
static const size_t class_size[] = { 64, 128, 256, 512, 1024, 2048, 4096 };
#define NCLASS		(sizeof(class_size) / sizeof(class_size[0]))
#define CLASS_LARGE	0xffffU

/*
 * Sits just before every buffer.  16 bytes keeps the buffer 16-aligned, as
 * malloc's would be.  `len` is the usable size: chunk size minus header for
 * small buffers, mapping size minus header for large ones.
 */
struct hdr {
	uint32_t magic;
	uint16_t cls;
	uint16_t unlocked;	/* the slab or mapping could not be mlock'ed */
	uint32_t len;
	uint32_t busy;		/* handed out: catches a double free */
};

/* A free chunk keeps the next pointer in its (otherwise wiped) body. */
struct free_chunk {
	struct hdr h;
	struct free_chunk *next;
};

/* pool_lock protects free_list[]; the unlocked counter is atomic. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct free_chunk *free_list[NCLASS];
static size_t unlocked_count;
/* Atomic: set by secmem_on_lock_failure, read by any allocating thread. */
static void (*lock_failure_fn)(void);
static int lock_failure_told;

/*
 * Maps len bytes, keeps them out of core dumps and tries to lock them.  A
 * failed mlock is not an error: RLIMIT_MEMLOCK is often small (8 MiB or
 * less), and a buffer left swappable but undumped beats no buffer.
 */
static void *map_secret(size_t len, int *unlocked)
{
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* MADV_DONTDUMP has existed since Linux 3.4; failure is not fatal. */
	(void)madvise(p, len, MADV_DONTDUMP);
	*unlocked = mlock(p, len) != 0;
	return p;
}

/* Tells the hook, once per process, that a buffer is not locked. */
static void tell_lock_failure(void)
{
	void (*fn)(void) = __atomic_load_n(&lock_failure_fn, __ATOMIC_ACQUIRE);

	if (fn && !__atomic_exchange_n(&lock_failure_told, 1, __ATOMIC_ACQ_REL))
		fn();
}

static int class_of(size_t n)
{
	size_t i;

	for (i = 0; i < NCLASS; i++)
		if (n + HDR_LEN <= class_size[i])
			return (int)i;
	return -1;
}

/* Carves a fresh slab into chunks of class c.  Called with pool_lock held. */
static int grow(int c)
{
	size_t sz = class_size[c], i;
	int unlocked;
	uint8_t *slab;

	slab = map_secret(SECMEM_SLAB, &unlocked);
	if (slab == NULL)
		return -ENOMEM;
	/* Push in reverse so chunks come out in address order. */
	for (i = SECMEM_SLAB / sz; i-- > 0;) {
		struct free_chunk *f = (struct free_chunk *)(slab + i * sz);

		f->h.magic = SECMEM_MAGIC;
		f->h.cls = (uint16_t)c;
		f->h.unlocked = (uint16_t)unlocked;
		f->h.len = (uint32_t)(sz - HDR_LEN);
		f->h.busy = 0;
		f->next = free_list[c];
		free_list[c] = f;
	}
	return 0;
}

static void *alloc_large(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (n + HDR_LEN + pg - 1) / pg * pg;
	struct hdr *h;
	int unlocked;

	h = map_secret(len, &unlocked);
	if (h == NULL)
		return NULL;
	h->magic = SECMEM_MAGIC;
	h->cls = CLASS_LARGE;
	h->unlocked = (uint16_t)unlocked;
	h->len = (uint32_t)(len - HDR_LEN);
	h->busy = 1;
	if (unlocked) {
		__atomic_add_fetch(&unlocked_count, 1, __ATOMIC_RELAXED);
		tell_lock_failure();
	}
	/* Fresh anonymous pages are already zero. */
	return h + 1;
}

void *secmem_alloc(size_t n)
{
	struct free_chunk *f;
	int c;

	if (n == 0 || n > SECMEM_MAX) {
		errno = n == 0 ? EINVAL : ENOMEM;
		return NULL;
	}
	c = class_of(n);
	if (c < 0)
		return alloc_large(n);

	pthread_mutex_lock(&pool_lock);
	if (free_list[c] == NULL && grow(c) < 0) {
		pthread_mutex_unlock(&pool_lock);
		errno = ENOMEM;
		return NULL;
	}
	f = free_list[c];
	free_list[c] = f->next;
	f->h.busy = 1;
	pthread_mutex_unlock(&pool_lock);

	/* Outside pool_lock: the hook may take locks of its own. */
	if (f->h.unlocked) {
		__atomic_add_fetch(&unlocked_count, 1, __ATOMIC_RELAXED);
		tell_lock_failure();
	}
	/* The body was wiped on free; only the list pointer is left. */
	f->next = NULL;
	return &f->h + 1;
}

void secmem_free(void *p)
{
	struct hdr *h;
	struct free_chunk *f;

	if (p == NULL)
		return;
	h = (struct hdr *)p - 1;
	/*
	 * Freeing something that is not ours, or twice, is a bug, not bad
	 * input: a chunk twice on a free list would be handed to two owners.
	 * (The busy flag is read unlocked; a racing double free is a bug too.)
	 */
	if (h->magic != SECMEM_MAGIC || h->busy != 1 ||
	    (h->cls != CLASS_LARGE && h->cls >= NCLASS)) {
		fprintf(stderr, "secmem_free: %p is not a live secmem buffer\n",
			p);
		abort();
	}
	explicit_bzero(p, h->len);
	if (h->cls == CLASS_LARGE) {
		size_t len = h->len + HDR_LEN;

		explicit_bzero(h, HDR_LEN);
		/* munmap drops the lock with the pages. */
		munmap(h, len);
		return;
	}
	f = (struct free_chunk *)h;
	pthread_mutex_lock(&pool_lock);
	h->busy = 0;
	f->next = free_list[h->cls];
	free_list[h->cls] = f;
	pthread_mutex_unlock(&pool_lock);
}

void secmem_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

size_t secmem_unlocked_count(void)
{
	return __atomic_load_n(&unlocked_count, __ATOMIC_RELAXED);
}

void secmem_on_lock_failure(void (*fn)(void))
{
	__atomic_store_n(&lock_failure_fn, fn, __ATOMIC_RELEASE);
	/* A failure before the hook was set is told now. */
	if (secmem_unlocked_count())
		tell_lock_failure();
}

int secmem_harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	/*
	 * Not dumpable also makes /proc/PID/mem and ptrace unavailable to
	 * other processes of the same user (OpenSSH's
	 * platform_disable_tracing).
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -errno;
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		return -errno;
	return 0;
}
