/*
 * test_golden.c — the volume written by format version 1, read back by this
 * version: tests/data/golden_v1 holds its keystore, its test key and two
 * encrypted files (one dense, one sparse) as extent lists, since git keeps no
 * holes and a sparse file's map lies 135 MB into it.  Never edit the golden
 * data: a format change that cannot read it is a new format version.
 * tests/data/golden_tree holds a sparse file with the TREE flag, written by
 * the version that added it, under the same keystore; golden_attrs a
 * file with the ATTRS flag (mode, owner and group in the header), the same
 * way.  A folder record (FOLDER_RECORD below) was sealed once, under the
 * same keystore, by the phifs that added folder records.
 *
 * PHIFS_REGEN_GOLDEN=1 rewrites the TREE file, only ever for a change of
 * its layout; the version 1 files were made once by the version before
 * TREE, and this one would no longer write the same sparse file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/format.h"
#include "phifs/keys.h"
#include "testutil.h"

#define SPARSE_TAIL_AT (200ULL * 4096 + 5)
/* The TREE file: "head" at 0, "mid" in group 1, "tail" in group 8192. */
#define TREE_MID_AT (200ULL << 20 | 3)
#define TREE_TAIL_AT ((1ULL << 40) + 5)

static struct keys_store *ks;
static struct cfile_volume vol;

static void open_golden_volume(void)
{
	char hex[80] = { 0 };
	uint8_t key[CRYPTO_KEY_LEN];
	struct keys_secret *sec;
	char err[KEYS_ERR_LEN];
	size_t len;
	uint8_t *txt = tu_read_data("golden_v1/key.hex", &len);
	int dfd;

	memcpy(hex, txt, len < 64 ? len : 64);
	free(txt);
	cr_assert_eq(tu_unhex(hex, key, sizeof(key)), CRYPTO_KEY_LEN);
	sec = keys_secret_raw(key);
	dfd = open(PHIFS_TEST_DATA "/golden_v1", O_RDONLY | O_DIRECTORY);
	cr_assert(dfd >= 0);
	cr_assert_eq(keys_load(dfd, sec, &ks, err, sizeof(err)), 0, "%s", err);
	close(dfd);
	keys_secret_free(sec);
	vol = (struct cfile_volume){
		.volume_id = keys_volume_id(ks),
		.kek = keys_kek_fn,
		.kek_arg = ks,
		.active_version = keys_active_version(ks),
		.journal_dirfd = -1,
	};
}

static void close_golden_volume(void)
{
	keys_free(ks);
}

TestSuite(golden, .init = open_golden_volume, .fini = close_golden_volume);

/* The plaintext of the dense golden file. */
static size_t dense_text(char *buf, size_t max)
{
	size_t n = 0;

	for (int i = 0; n + 16 < max && i < 700; i++)
		n += (size_t)snprintf(buf + n, max - n, "golden v1 %05d\n", i);
	return n;
}

/* Extent list: "backing SIZE", then "OFFSET HEX" per run of data. */
static int load_extents(const char *name)
{
	size_t len;
	char *txt = (char *)tu_read_data(name, &len), *line, *save = NULL;
	int fd = tu_memfd(name);

	txt = realloc(txt, len + 1);
	txt[len] = 0;
	for (line = strtok_r(txt, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long long off;
		char *sp;
		uint8_t *bytes;
		long n;

		if (sscanf(line, "backing %llu", &off) == 1) {
			cr_assert_eq(ftruncate(fd, (off_t)off), 0);
			continue;
		}
		off = strtoull(line, &sp, 10);
		bytes = malloc(strlen(sp) / 2 + 1);
		n = tu_unhex(sp + 1, bytes, strlen(sp) / 2 + 1);
		cr_assert(n > 0, "bad extent line in %s", name);
		cr_assert_eq(pwrite(fd, bytes, (size_t)n, (off_t)off), n);
		free(bytes);
	}
	free(txt);
	return fd;
}

static void save_extents(int fd, const char *name)
{
	char path[4096];
	off_t end = lseek(fd, 0, SEEK_END), data = 0, hole;
	FILE *out;
	uint8_t buf[4096];

	snprintf(path, sizeof(path), "%s/%s", PHIFS_TEST_DATA, name);
	out = fopen(path, "w");
	cr_assert(out);
	fprintf(out, "backing %lld\n", (long long)end);
	while ((data = lseek(fd, data, SEEK_DATA)) >= 0 && data < end) {
		hole = lseek(fd, data, SEEK_HOLE);
		for (off_t o = data; o < hole; o += sizeof(buf)) {
			size_t n = (size_t)(hole - o) < sizeof(buf) ?
				   (size_t)(hole - o) : sizeof(buf);

			cr_assert_eq(pread(fd, buf, n, o), (ssize_t)n);
			fprintf(out, "%lld ", (long long)o);
			for (size_t i = 0; i < n; i++)
				fprintf(out, "%02x", buf[i]);
			fputc('\n', out);
		}
		data = hole;
	}
	fclose(out);
}

Test(golden, regenerate_only_when_asked)
{
	struct cfile *f;
	int fd;

	if (!getenv("PHIFS_REGEN_GOLDEN"))
		cr_skip_test("set PHIFS_REGEN_GOLDEN=1 to rewrite golden data");
	fd = tu_memfd("tree");
	cr_assert_eq(cfile_create(fd, &vol, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "head", 4, 0), 4);
	cr_assert_eq(cfile_pwrite(f, "mid", 3, TREE_MID_AT), 3);
	cr_assert_eq(cfile_pwrite(f, "tail", 4, TREE_TAIL_AT), 4);
	cr_assert_eq(cfile_release(f), 0);
	save_extents(fd, "golden_tree/sparse.ext");
}

Test(golden, the_v1_dense_file_reads_back)
{
	static char text[16384], out[16384];
	size_t n = dense_text(text, sizeof(text));
	int fd = load_extents("golden_v1/dense.ext");
	struct format_attrs a;
	struct cfile_note note;
	struct cfile *f;

	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	cr_expect(!cfile_take_note(f, &note), "both slots sound");
	cr_expect_eq(cfile_attrs(f, &a), -ENODATA,
		     "a v1 header keeps no mode or owner: the backing's count");
	cr_assert_eq(cfile_size(f), n);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), 0), (ssize_t)n);
	cr_assert_arr_eq(out, text, n);
	cfile_release(f);
}

Test(golden, the_v1_sparse_file_reads_back)
{
	static uint8_t out[SPARSE_TAIL_AT + 4];
	int fd = load_extents("golden_v1/sparse.ext");
	struct cfile_note note;
	struct cfile *f;

	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	cr_expect(!cfile_take_note(f, &note), "both slots sound");
	cr_assert_eq(cfile_size(f), SPARSE_TAIL_AT + 4);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), 0), (ssize_t)sizeof(out));
	cr_assert_arr_eq(out, "head", 4);
	for (size_t i = 4; i < SPARSE_TAIL_AT; i++)
		cr_assert_eq(out[i], 0, "byte %zu", i);
	cr_assert_arr_eq(out + SPARSE_TAIL_AT, "tail", 4);
	cfile_release(f);
}

/* The flags of the header in force: the slot with the higher seq. */
static uint16_t header_flags(int fd)
{
	uint8_t region[FORMAT_HEADER_SIZE];
	struct format_header h[2];

	cr_assert_eq(pread(fd, region, sizeof(region), 0),
		     (ssize_t)sizeof(region));
	cr_assert_eq(format_slot_parse(region, &h[0]), 0);
	cr_assert_eq(format_slot_parse(region + FORMAT_SLOT_STRIDE, &h[1]), 0);
	return h[h[1].seq > h[0].seq].flags;
}

/* Reads n bytes at off of f and checks them against want. */
static void reads(struct cfile *f, uint64_t off, const char *want, size_t n)
{
	char out[16];

	cr_assert_eq(cfile_pread(f, out, n, off), (ssize_t)n, "at %llu",
		     (unsigned long long)off);
	cr_assert_arr_eq(out, want, n, "at %llu", (unsigned long long)off);
}

#define ATTRS_GOLDEN ((struct format_attrs){ 02640, 1234, 5678 })

Test(golden, regenerate_attrs_only_when_asked)
{
	struct cfile *f;
	int fd;

	if (!getenv("PHIFS_REGEN_GOLDEN_ATTRS"))
		cr_skip_test("set PHIFS_REGEN_GOLDEN_ATTRS=1 to rewrite it");
	fd = tu_memfd("attrs");
	cr_assert_eq(cfile_create(fd, &vol, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "attrs", 5, 0), 5);
	cr_assert_eq(cfile_set_attrs(f, &ATTRS_GOLDEN), 0);
	cr_assert_eq(cfile_release(f), 0);
	save_extents(fd, "golden_attrs/dense.ext");
}

Test(golden, the_attrs_file_reads_back_with_its_mode_and_owner)
{
	int fd = load_extents("golden_attrs/dense.ext");
	struct format_attrs a;
	struct cfile *f;

	cr_assert_eq(header_flags(fd), FORMAT_F_ATTRS);
	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	cr_assert_eq(cfile_size(f), 5);
	reads(f, 0, "attrs", 5);
	cr_assert_eq(cfile_attrs(f, &a), 0);
	cr_expect_eq(a.mode, ATTRS_GOLDEN.mode);
	cr_expect_eq(a.uid, ATTRS_GOLDEN.uid);
	cr_expect_eq(a.gid, ATTRS_GOLDEN.gid);
	cfile_release(f);
	close(fd);
}

Test(golden, the_v1_sparse_file_takes_writes_and_keeps_its_layout)
{
	int fd = load_extents("golden_v1/sparse.ext");
	struct cfile *f;

	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "far", 3, 1ULL << 30), 3);
	cr_assert_eq(cfile_pwrite(f, "mid", 3, 300 * 4096), 3);
	cr_assert_eq(cfile_release(f), 0);
	/* Its first commit records the backing's mode and owner. */
	cr_assert_eq(header_flags(fd), FORMAT_F_SPARSE | FORMAT_F_ATTRS);
	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	reads(f, 0, "head", 4);
	reads(f, SPARSE_TAIL_AT, "tail", 4);
	reads(f, 300 * 4096, "mid", 3);
	reads(f, 1ULL << 30, "far", 3);
	reads(f, 1ULL << 29, "\0\0\0\0", 4);
	cr_assert_eq(cfile_truncate(f, SPARSE_TAIL_AT + 4), 0);
	cr_assert_eq(cfile_pwrite(f, "again", 5, 3ULL << 30), 5);
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(header_flags(fd), FORMAT_F_SPARSE | FORMAT_F_ATTRS);
	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	reads(f, 3ULL << 30, "again", 5);
	reads(f, 1ULL << 30, "\0\0\0", 3);
	reads(f, SPARSE_TAIL_AT, "tail", 4);
	cfile_release(f);
	close(fd);
}

Test(golden, the_tree_sparse_file_reads_back)
{
	int fd = load_extents("golden_tree/sparse.ext");
	struct cfile *f;

	cr_assert_eq(header_flags(fd), FORMAT_F_SPARSE | FORMAT_F_TREE);
	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	cr_assert_eq(cfile_size(f), TREE_TAIL_AT + 4);
	reads(f, 0, "head", 4);
	reads(f, 4, "\0\0\0\0", 4);
	reads(f, TREE_MID_AT, "mid", 3);
	reads(f, 1ULL << 35, "\0\0\0\0", 4);
	reads(f, TREE_TAIL_AT - 4, "\0\0\0\0tail", 8);
	cfile_release(f);
	close(fd);
}

Test(golden, a_failed_grow_of_the_v1_sparse_file_leaves_its_backing_as_it_was)
{
	int fd = load_extents("golden_v1/sparse.ext");
	struct rlimit lim;
	struct stat before, after;
	struct cfile *f;

	cr_assert_eq(fstat(fd, &before), 0);
	/* Room for the map of group 1 only: group 2's fails. */
	lim.rlim_cur = lim.rlim_max = (rlim_t)before.st_size + (200 << 20);
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "far", 3, 1ULL << 30), -EFBIG);
	cr_assert_eq(cfile_truncate(f, 1ULL << 30), -EFBIG);
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(fstat(fd, &after), 0);
	cr_assert_eq(after.st_size, before.st_size);
	cr_assert_eq(after.st_blocks, before.st_blocks);
	cr_assert_eq(cfile_open(fd, &vol, &f), 0);
	reads(f, SPARSE_TAIL_AT, "tail", 4);
	reads(f, 0, "head", 4);
	cfile_release(f);
	close(fd);
}

/*
 * A folder record made once by the phifs that added them: mode 02750,
 * owner 1234:5678, folder ID a0 a1 .. af, for backing inode 4242 of the
 * golden volume.  Never regenerated.
 */
#define FOLDER_RECORD \
	"50484946534449520100000021941ad33c61ff890f6fe014f4b16aa0667a2d8d" \
	"bc694f1d5e59845101e4676521223b9ed5ddab84a7dd161f6425627626cdad07" \
	"6037d905"

Test(golden, the_folder_record_opens_with_its_mode_owner_and_id)
{
	uint8_t rec[FORMAT_FOLDER_LEN], id[FORMAT_ID_LEN];
	struct crypto_key *k = NULL;
	struct format_folder f;

	cr_assert_eq(tu_unhex(FOLDER_RECORD, rec, sizeof(rec)),
		     (ssize_t)sizeof(rec));
	cr_assert_eq(keys_volume_key(ks, "phifs folder v1", &k), 0);
	cr_assert_eq(format_folder_open(k, keys_volume_id(ks), 4242, rec,
					sizeof(rec), &f), 0);
	cr_expect_eq(f.attrs.mode, 02750);
	cr_expect_eq(f.attrs.uid, 1234);
	cr_expect_eq(f.attrs.gid, 5678);
	for (int i = 0; i < FORMAT_ID_LEN; i++)
		id[i] = (uint8_t)(0xa0 + i);
	cr_expect_eq(memcmp(f.id, id, sizeof(id)), 0);
	cr_expect_eq(format_folder_open(k, keys_volume_id(ks), 4243, rec,
					sizeof(rec), &f), -EBADMSG);
	crypto_key_free(k);
}
