/*
 * replay.c -- run a pagemap-scan scenario on the real kernel.
 *
 * This file has two parts:
 *   1. the runtime (everything above the "stdin driver" marker): harness set-up and one step
 *      function per scenario op (do_mmap, do_touch, do_pagemap_scan, ...). Each step function
 *      performs its system call(s) and prints one JSON line describing the result.
 *   2. the stdin driver (below the marker): reads one step per line and calls the step functions.
 *
 * src/kernel/export-c.ts reuses part 1 verbatim and appends a generated main() that calls the
 * step functions with literal arguments, so keep part 1 free of anything stdin-specific.
 *
 * Two output modes (output_mode, chosen before harness_init()):
 *   OUTPUT_LINES (the replay harness): the line protocol below, parsed by src/kernel/protocol.ts.
 *   OUTPUT_CONTRACT (export-c programs): one JSON document in the shape of `pagemap-scan run --json`
 *     (scenario-format.md "Machine-readable output"): {"scenario", "kernel", "steps": [...]}, each
 *     step {step, op, ret, errno} and for scans {walk_end, regions: [{start, end, categories:
 *     [names in bit order]}]}, plus "stopped": {step, message} when the scenario stopped early.
 *     A step that blocked on userfaultfd is printed with "userfault": {address, flags} (as below)
 *     and the document ends with "stopped" (exit status 2, as for any step that stops it); a step
 *     the kernel loops in for ever, with "hang": {why, address} (address for a read or write).
 *
 * Line protocol (OUTPUT_LINES), one JSON object per line:
 *   {"harness":{...}}                        first line: kernel probes and the harness's own mappings
 *   {"step":N,"op":"mmap","ret":0,"errno":null}
 *   {"step":N,"op":"pagemap_scan","ret":R,"errno":null,"walk_end":"0x..."|null,
 *    "regions":[{"start":"0x..","end":"0x..","categories":N},...]}
 *   {"step":N,"op":"write","ret":-1,"errno":null,"hang":"blocked"|"busy","timeout_ms":T}  stuck step
 *   {"step":N,"op":"mmap","ret":-1,"errno":null,"unsupported":"why"}    step cannot be reproduced
 *   {"step":N,"op":"read","ret":-1,"errno":null,"userfault":{"address":"0x..","flags":["WRITE","WP"]}}
 *        the step blocked in handle_userfault(): the UFFD_EVENT_PAGEFAULT message it queued
 *        (arg.pagefault.address; flags by name, UFFD_PAGEFAULT_FLAG_WRITE/WP/MINOR, in bit order),
 *        read by the userfaultfd watchdog thread (see "the userfaultfd watchdog" below)
 *   {"step":N,"op":"write","ret":-1,"errno":null,"hang":{"why":"fault-loop","address":"0x..","evidence":"..."}}
 *        the kernel loops in the step for ever, recognised by the watchdog thread (see "loops the
 *        kernel never leaves" below): "fault-loop" (the same fault taken again and again; address:
 *        the byte a read or write touches, absent for MADV_POPULATE_*) or "restart-loop" (a
 *        madvise that spins without returning and without faults); evidence: what was measured
 *   {"end":"complete"} | {"end":"stopped","step":N,"reason":"failed|hang|unsupported|userfault|livelock"}
 *
 * C11, libc (POSIX threads: glibc 2.34 or later needs no -pthread) and Linux uapi headers only. The system headers may predate PAGEMAP_SCAN and the newer
 * userfaultfd features, so those are defined here when missing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

/* ---- uapi that old headers lack ---------------------------------------------------------- */

#ifndef PAGEMAP_SCAN
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN 0xC0606610 /* _IOWR('f', 16, struct pm_scan_arg) */
#endif

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21U << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30U << MAP_HUGE_SHIFT)
#endif

/* ---- harness constants (keep in sync with src/scenario/program.ts) ------------------------- */

#define PAGE_SIZE 4096ULL
/* The output array of every scan: VEC_ADDR, VEC_CAPACITY entries. */
#define VEC_ADDR 0x600000000000ULL
#define VEC_CAPACITY (1ULL << 20)
/* What a scan's walk_end holds before the call: the kernel only ever writes page-aligned values. */
#define WALK_END_SENTINEL 0xdeadbeefdeadbeefULL
/* What every output slot holds before a scan: start is unaligned, so the kernel never writes it. */
#define REGION_SENTINEL 0x5ca9e5e9710e5e17ULL
/* Where file-backed mappings get their (immediately unlinked) backing file: a disk filesystem. */
#define FILE_DIR "/var/tmp"

/* ---- state ------------------------------------------------------------------------------- */

static int pagemap_fd = -1;
static int uffd = -1;
/* A step that makes no progress (uses no CPU: e.g. a fault waiting for a userfaultfd reader) for
 * step_timeout_ms, or that runs for longer than step_limit_ms in all (e.g. a system call that
 * restarts forever), is reported as a hang. */
static unsigned step_timeout_ms = 5000;
static unsigned step_limit_ms = 60000;

/* The harness's own mappings, recorded at start, so scenario steps cannot clobber them. */
#define MAX_HARNESS_MAPS 256
static struct harness_map {
	uint64_t start, end;
	char name[256];
} harness_maps[MAX_HARNESS_MAPS];
static int n_harness_maps;

static sigjmp_buf fault_jmp; /* where a SIGSEGV/SIGBUS during a touch returns to */
static volatile sig_atomic_t in_touch;
static volatile sig_atomic_t fault_signal;
/* While a step runs: when it started, CPU time at the last timer tick, and what to print if it
 * turns out to be stuck (one line for "blocked", one for "busy"). */
static volatile sig_atomic_t in_step;
static uint64_t step_start_ns, step_cpu_ns;
static char hang_blocked[512], hang_busy[512];
static size_t hang_blocked_len, hang_busy_len;

static char stdout_buf[1 << 16];

/* Set by whoever reports that a step never returned (on_alarm or the userfaultfd watchdog): one
 * report, then _exit. */
static atomic_flag end_reported = ATOMIC_FLAG_INIT;

/* What the output looks like (see the top of this file). */
enum output_mode { OUTPUT_LINES, OUTPUT_CONTRACT };
static enum output_mode output_mode = OUTPUT_LINES;
/* OUTPUT_CONTRACT: the scenario's name, and how many steps have been printed so far. */
static const char *scenario_name = "";
static unsigned steps_printed;
/* OUTPUT_CONTRACT: why the scenario stopped, for "stopped": {"step", "message"}. */
static char stop_message[512];

/* ---- small helpers ------------------------------------------------------------------------- */

static void *ptr(uint64_t addr)
{
	return (void *)(uintptr_t)addr;
}

static const char *errno_name(int e)
{
	static char buf[16];
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case ERANGE: return "ERANGE";
	case ENOSYS: return "ENOSYS";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EHWPOISON: return "EHWPOISON";
	default:
		snprintf(buf, sizeof(buf), "E%d", e);
		return buf;
	}
}

/* Print s as a JSON string. */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* The common head of a step's result: {"step":N,"op":"...","ret":R,"errno":... (in the contract
 * document, preceded by the separator from the previous step). */
static void print_head(unsigned step, const char *op, long ret, const char *err)
{
	if (output_mode == OUTPUT_CONTRACT)
		printf("%s\n    ", steps_printed++ ? "," : "");
	printf("{\"step\":%u,\"op\":\"%s\",\"ret\":%ld,\"errno\":", step, op, ret);
	if (err)
		printf("\"%s\"", err);
	else
		printf("null");
}

/* The tail of the contract document: closes "steps" (after `printed` steps), adds "stopped" when
 * `message` is not NULL. Returns the length written to buf. Async-signal-safe (no stdio). */
static size_t format_contract_end(char *buf, size_t size, unsigned printed, unsigned step, const char *message)
{
	size_t n = 0;
	const char *close = printed ? "\n  ]" : "]";
	for (const char *c = close; *c && n + 1 < size; c++)
		buf[n++] = *c;
	if (message) {
		int k = snprintf(buf + n, size - n, ",\n  \"stopped\": {\"step\": %u, \"message\": \"", step);
		n += k > 0 ? (size_t)k : 0;
		/* JSON-escape the message. */
		for (const unsigned char *m = (const unsigned char *)message; *m && n + 8 < size; m++) {
			if (*m == '"' || *m == '\\') {
				buf[n++] = '\\';
				buf[n++] = (char)*m;
			} else if (*m < 0x20) {
				n += (size_t)snprintf(buf + n, size - n, "\\u%04x", *m);
			} else {
				buf[n++] = (char)*m;
			}
		}
		if (n + 2 < size) {
			buf[n++] = '"';
			buf[n++] = '}';
		}
	}
	const char *tail = "\n}\n";
	for (const char *c = tail; *c && n + 1 < size; c++)
		buf[n++] = *c;
	buf[n < size ? n : size - 1] = 0;
	return n;
}

/* The end of the output: {"end":...} (lines), or the tail of the contract document. */
static void print_end(const char *how, unsigned step, const char *reason)
{
	if (output_mode == OUTPUT_CONTRACT) {
		char tail[1024];
		format_contract_end(tail, sizeof(tail), steps_printed, step,
				    strcmp(how, "stopped") ? NULL : (stop_message[0] ? stop_message : reason));
		fputs(tail, stdout);
		fflush(stdout);
		return;
	}
	if (reason)
		printf("{\"end\":\"%s\",\"step\":%u,\"reason\":\"%s\"}\n", how, step, reason);
	else
		printf("{\"end\":\"%s\"}\n", how);
	fflush(stdout);
}

/* ---- per-step guards: timeout and signals --------------------------------------------------- */

/* A periodic SIGALRM every `ms` (0: off). */
static void set_step_timer(unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	struct itimerval t = { .it_value = tv, .it_interval = tv };
	setitimer(ITIMER_REAL, &t, NULL);
}

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* SIGALRM, every step_timeout_ms while a step runs. A step that used (almost) no CPU since the
 * last tick is blocked; one that has been running for step_limit_ms is spinning. Either way it is
 * stuck: report it and end the process, nothing after it could be trusted. Only async-signal-safe
 * calls here (clock_gettime, write, _exit). */
static void on_alarm(int sig)
{
	(void)sig;
	if (!in_step)
		return;
	uint64_t cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t used_ms = (cpu - step_cpu_ns) / 1000000u;
	uint64_t elapsed_ms = (clock_ns(CLOCK_MONOTONIC) - step_start_ns) / 1000000u;
	step_cpu_ns = cpu;
	bool blocked = used_ms * 4 < step_timeout_ms; /* busy less than a quarter of the time */
	if (!blocked && elapsed_ms < step_limit_ms)
		return;
	if (atomic_flag_test_and_set(&end_reported))
		return; /* the userfaultfd watchdog is reporting this step */
	ssize_t written = blocked ? write(STDOUT_FILENO, hang_blocked, hang_blocked_len)
				  : write(STDOUT_FILENO, hang_busy, hang_busy_len);
	(void)written;
	_exit(output_mode == OUTPUT_CONTRACT ? 2 : 0);
}

static void on_fault(int sig)
{
	if (in_touch) {
		fault_signal = sig;
		siglongjmp(fault_jmp, 1);
	}
	/* A fault in the harness itself: die with the signal. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static size_t format_hang(char *buf, size_t size, unsigned step, const char *op, const char *how, unsigned ms)
{
	if (output_mode == OUTPUT_CONTRACT) {
		/* The step has no result: the document ends with why. Nothing of this step is printed
		 * before the hang (its result is printed after the system call returns). */
		char message[256];
		if (!strcmp(how, "busy"))
			snprintf(message, sizeof(message),
				 "%s: still running after %u ms on the kernel (hang: e.g. a system call that restarts forever)",
				 op, ms);
		else
			snprintf(message, sizeof(message),
				 "%s: blocked for %u ms on the kernel (hang: e.g. a fault waiting for a userfaultfd reader that does not exist)",
				 op, ms);
		return format_contract_end(buf, size, steps_printed, step, message);
	}
	int n = snprintf(buf, size,
			 "{\"step\":%u,\"op\":\"%s\",\"ret\":-1,\"errno\":null,\"hang\":\"%s\",\"timeout_ms\":%u}\n"
			 "{\"end\":\"stopped\",\"step\":%u,\"reason\":\"hang\"}\n",
			 step, op, how, ms, step);
	return n < (int)size ? (size_t)n : size - 1;
}

/* Every step function starts with begin_step: it prepares the hang reports and starts the timer. */
static void begin_step(unsigned step, const char *op)
{
	hang_blocked_len = format_hang(hang_blocked, sizeof(hang_blocked), step, op, "blocked", step_timeout_ms);
	hang_busy_len = format_hang(hang_busy, sizeof(hang_busy), step, op, "busy", step_limit_ms);
	fflush(stdout);
	step_start_ns = clock_ns(CLOCK_MONOTONIC);
	step_cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	in_step = 1;
	set_step_timer(step_timeout_ms);
}

static void uffd_watch_end(void);

static void end_step(void)
{
	in_step = 0;
	set_step_timer(0);
	uffd_watch_end();
}

/* ---- the userfaultfd watchdog --------------------------------------------------------------
 *
 * A fault into a userfaultfd registration that delivers it to the reader (MISSING on a none
 * entry, WP without WP_ASYNC on a write-protected one, and no UFFD_FEATURE_SIGBUS) sleeps in
 * handle_userfault() with a UFFD_EVENT_PAGEFAULT message queued on the uffd. A scenario has no
 * reader, so the step never returns; the message is its result. A second thread reads it:
 *   - the SIGALRM handler cannot: by the time it runs, the signal has woken the faulting thread,
 *     which took its message off the queue (it queues it again when the fault is retried);
 *   - a fault made by the kernel (MADV_POPULATE_*: GUP) waits killable only, so SIGALRM is not
 *     even delivered while it sleeps.
 * While a read, write or madvise step runs with a uffd open, the thread poll()s the uffd (and an
 * eventfd that ends the watch). On POLLIN it reads one message, with the uffd O_NONBLOCK, but only
 * when /proc/self/fdinfo says a fault is pending: reading a non-cooperative event (EVENT_REMOVE,
 * EVENT_UNMAP, ...) would complete it and let the step go on, which the scenario did not do.
 * Between steps the thread holds no reference to the uffd, so closing it still releases it at
 * once. The thread also looks for loops (below), so it is created by harness_init(), before the
 * harness's own mappings are recorded, on a static stack (no new mapping), with every signal
 * blocked; the uffd is opened without UFFD_USER_MODE_ONLY, as it always was. */

static int watch_wake_fd = -1;	/* eventfd: ends a watch */
static bool watch_started;	/* the thread exists */
static bool watch_on;		/* main thread: a watch was begun by this step */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cond = PTHREAD_COND_INITIALIZER;
/* Under watch_lock: the uffd to watch (-1: none) for step watch_step, and whether the thread is
 * inside poll() on it. */
static int watch_fd = -1;
static unsigned watch_step;
static const char *watch_op;
static bool watch_polling;
/* Under watch_lock: a step is being watched (for loops, and its uffd when watch_fd >= 0), of
 * which kind, over how many pages (a madvise). */
static bool watch_active;
static enum watch_kind { WATCH_TOUCH, WATCH_MADVISE, WATCH_POPULATE, WATCH_OTHER } watch_kind;
static uint64_t watch_pages;
static char watch_stack[1 << 18] __attribute__((aligned(4096)));

/* The number after `key` (which starts with a newline) in the text file `path`, or -1. */
static long proc_number(const char *path, const char *key)
{
	char buf[16384];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* Faults queued on uffd and not yet read ("pending:" of /proc/self/fdinfo/FD), or -1. */
static long uffd_pending_faults(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return proc_number(path, "\npending:");
}

static void write_all(const char *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t w = write(STDOUT_FILENO, buf + done, len - done);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
}

/* Print the step's result with the message, end the output and the process. */
_Noreturn static void report_userfault(unsigned step, const char *op, const struct uffd_msg *msg)
{
	if (atomic_flag_test_and_set(&end_reported))
		for (;;)
			pause(); /* on_alarm is reporting this step and ends the process */
	static const char *const names[] = { "WRITE", "WP", "MINOR" };
	uint64_t flags = msg->arg.pagefault.flags;
	uint64_t address = msg->arg.pagefault.address;
	char list[96] = "", text[96] = "";
	size_t nl = 0, nt = 0;
	for (unsigned bit = 0; bit < 3; bit++) {
		if (!(flags & (1ULL << bit)))
			continue;
		nl += (size_t)snprintf(list + nl, sizeof(list) - nl, "%s\"%s\"", nl ? "," : "", names[bit]);
		nt += (size_t)snprintf(text + nt, sizeof(text) - nt, "%s%s", nt ? "|" : "", names[bit]);
	}
	if (flags & ~(uint64_t)7) {
		nl += (size_t)snprintf(list + nl, sizeof(list) - nl, "%s\"0x%" PRIx64 "\"", nl ? "," : "", flags & ~(uint64_t)7);
		nt += (size_t)snprintf(text + nt, sizeof(text) - nt, "%s0x%" PRIx64, nt ? "|" : "", flags & ~(uint64_t)7);
	}
	static char out[1024], tail[1024];
	size_t n, tail_len = 0;
	if (output_mode == OUTPUT_CONTRACT) {
		char message[512];
		snprintf(message, sizeof(message),
			 "%s blocks in handle_userfault(): userfaultfd message PAGEFAULT address 0x%" PRIx64
			 " flags %s, and the scenario has no reader; nothing after it runs",
			 op, address, nt ? text : "0");
		int k = snprintf(out, sizeof(out),
				 "%s\n    {\"step\":%u,\"op\":\"%s\",\"ret\":-1,\"errno\":null,"
				 "\"userfault\":{\"address\":\"0x%" PRIx64 "\",\"flags\":[%s]}}",
				 steps_printed ? "," : "", step, op, address, list);
		n = k > 0 ? (size_t)k : 0;
		tail_len = format_contract_end(tail, sizeof(tail), steps_printed + 1, step, message);
	} else {
		int k = snprintf(out, sizeof(out),
				 "{\"step\":%u,\"op\":\"%s\",\"ret\":-1,\"errno\":null,"
				 "\"userfault\":{\"address\":\"0x%" PRIx64 "\",\"flags\":[%s]}}\n"
				 "{\"end\":\"stopped\",\"step\":%u,\"reason\":\"userfault\"}\n",
				 step, op, address, list, step);
		n = k > 0 ? (size_t)k : 0;
	}
	write_all(out, n < sizeof(out) ? n : sizeof(out) - 1);
	write_all(tail, tail_len);
	_exit(output_mode == OUTPUT_CONTRACT ? 2 : 0);
}

/* ---- loops the kernel never leaves ----------------------------------------------------------
 *
 * Some steps never return because the kernel loops: a fault it "handles" without resolving it is
 * taken again at once, for ever (a write to a hugetlb page whose uffd-wp bit outlived the VMA's
 * WP registration), or a system call redoes its work for ever (MADV_GUARD_INSTALL over uffd-wp
 * markers in a file VMA). That is the step's result. The SIGALRM watchdog cannot see the second
 * (the thread never returns to user space, where handlers run) and sees the first only as "busy"
 * after step_limit_ms; the watchdog thread samples the main thread every WATCH_TICK_MS while a
 * read, write or madvise runs instead, and recognises them quickly from what only a loop does:
 *   - fault-loop, read/write: one byte is being touched (the touch counter did not move) for
 *     FAULT_LOOP_MS while the thread completed FAULT_LOOP_FAULTS faults (minflt + majflt of
 *     /proc/self/task/TID/stat; a fault is counted when handle_mm_fault() returns without
 *     VM_FAULT_RETRY or an error). One access needs one or two faults, however slow they are (a
 *     1 GiB hugetlb page takes long to clear, but is one fault);
 *   - fault-loop, MADV_POPULATE_*: more faults than 2 per page of the range plus
 *     FAULT_LOOP_FAULTS (GUP faults every page at most once or twice), after FAULT_LOOP_MS;
 *   - restart-loop, any other madvise that neither allocates nor does I/O: still inside the call
 *     after RESTART_LOOP_MS plus RESTART_LOOP_MS_PER_GIB per GiB of its range, busy at least a
 *     quarter of that time (it is not waiting), with no fault completed. Such a call walks its
 *     range once, at a few tens of ms per GiB.
 * Anything else stuck is left to the SIGALRM watchdog and reported as before ("blocked"/"busy",
 * not reproducible). */

#define WATCH_TICK_MS 100
#define FAULT_LOOP_MS 1000
#define FAULT_LOOP_FAULTS 1000
#define RESTART_LOOP_MS 2000
#define RESTART_LOOP_MS_PER_GIB 2000

static pid_t main_tid;			/* the thread that runs the steps */
static clockid_t main_cpu_clock;	/* its CPU-time clock */
static bool main_cpu_clock_ok;
/* The touch in progress (do_touch()): the byte, and how many touches have started. */
static _Atomic uint64_t touch_addr;
static _Atomic uint64_t touch_seq;

/* What the watchdog thread samples: wall time, the main thread's CPU time and completed faults,
 * the touch counter. */
struct main_sample {
	uint64_t ns, cpu_ns, faults, touches;
};

/* minflt + majflt of the main thread (/proc/self/task/TID/stat fields 10 and 12), or UINT64_MAX. */
static uint64_t main_faults(void)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)main_tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return UINT64_MAX;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
	if (!p)
		return UINT64_MAX;
	/* Fields from 3 (state) on; minflt is field 10, majflt field 12. */
	uint64_t minflt = 0, majflt = 0;
	unsigned field = 2;
	for (p++; *p && field < 12;) {
		while (*p == ' ')
			p++;
		field++;
		char *end;
		unsigned long long v = strtoull(p, &end, 10);
		if (field == 10)
			minflt = v;
		if (field == 12)
			majflt = v;
		while (*p && *p != ' ')
			p++;
	}
	return field == 12 ? minflt + majflt : UINT64_MAX;
}

static struct main_sample sample_main(void)
{
	struct main_sample s = { .ns = clock_ns(CLOCK_MONOTONIC), .faults = main_faults() };
	struct timespec ts;
	if (main_cpu_clock_ok && clock_gettime(main_cpu_clock, &ts) == 0)
		s.cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	s.touches = atomic_load(&touch_seq);
	return s;
}

/* Print the step's result (it never returns: the kernel loops), end the output and the process. */
_Noreturn static void report_hang(unsigned step, const char *op, const char *why, bool has_address, uint64_t address,
				  const char *evidence)
{
	if (atomic_flag_test_and_set(&end_reported))
		for (;;)
			pause(); /* on_alarm is reporting this step and ends the process */
	char addr[48] = "", at[48] = "";
	if (has_address) {
		snprintf(addr, sizeof(addr), ",\"address\":\"0x%" PRIx64 "\"", address);
		snprintf(at, sizeof(at), " at 0x%" PRIx64, address);
	}
	const char *what = !strcmp(why, "fault-loop") ? "the kernel takes the same fault again for ever"
						       : "the kernel restarts the system call for ever";
	static char out[1024], tail[1024];
	size_t n, tail_len = 0;
	if (output_mode == OUTPUT_CONTRACT) {
		char message[512];
		snprintf(message, sizeof(message), "%s never returns (%s%s): %s; nothing after it runs (%s)", op, why, at,
			 what, evidence);
		int k = snprintf(out, sizeof(out),
				 "%s\n    {\"step\":%u,\"op\":\"%s\",\"ret\":-1,\"errno\":null,\"hang\":{\"why\":\"%s\"%s}}",
				 steps_printed ? "," : "", step, op, why, addr);
		n = k > 0 ? (size_t)k : 0;
		tail_len = format_contract_end(tail, sizeof(tail), steps_printed + 1, step, message);
	} else {
		int k = snprintf(out, sizeof(out),
				 "{\"step\":%u,\"op\":\"%s\",\"ret\":-1,\"errno\":null,"
				 "\"hang\":{\"why\":\"%s\"%s,\"evidence\":\"%s\"}}\n"
				 "{\"end\":\"stopped\",\"step\":%u,\"reason\":\"livelock\"}\n",
				 step, op, why, addr, evidence, step);
		n = k > 0 ? (size_t)k : 0;
	}
	write_all(out, n < sizeof(out) ? n : sizeof(out) - 1);
	write_all(tail, tail_len);
	_exit(output_mode == OUTPUT_CONTRACT ? 2 : 0);
}

/* One tick of the loop detector (see above): `start` is the sample at the start of the step,
 * `*last` the one at the last touch progress. Reports (and does not return) on a loop. */
static void check_loops(unsigned step, const char *op, enum watch_kind kind, uint64_t pages,
			const struct main_sample *start, struct main_sample *last)
{
	struct main_sample now = sample_main();
	if (now.faults == UINT64_MAX || start->faults == UINT64_MAX)
		return;
	char evidence[160];
	if (kind == WATCH_TOUCH) {
		if (now.touches != last->touches || now.faults < last->faults) {
			*last = now; /* progress: a new byte */
			return;
		}
		uint64_t ms = (now.ns - last->ns) / 1000000u, faults = now.faults - last->faults;
		if (ms < FAULT_LOOP_MS || faults < FAULT_LOOP_FAULTS)
			return;
		snprintf(evidence, sizeof(evidence), "%" PRIu64 " faults in %" PRIu64 " ms on one byte", faults, ms);
		report_hang(step, op, "fault-loop", true, atomic_load(&touch_addr), evidence);
	}
	uint64_t ms = (now.ns - start->ns) / 1000000u;
	uint64_t faults = now.faults >= start->faults ? now.faults - start->faults : 0;
	if (kind == WATCH_POPULATE) {
		if (ms < FAULT_LOOP_MS || faults <= 2 * pages + FAULT_LOOP_FAULTS)
			return;
		snprintf(evidence, sizeof(evidence), "%" PRIu64 " faults in %" PRIu64 " ms over %" PRIu64 " pages", faults, ms,
			 pages);
		report_hang(step, op, "fault-loop", false, 0, evidence);
	}
	if (kind == WATCH_MADVISE) {
		uint64_t gib = pages >> 18; /* whole GiB of the range */
		uint64_t cpu_ms = main_cpu_clock_ok ? (now.cpu_ns - start->cpu_ns) / 1000000u : 0;
		if (ms < RESTART_LOOP_MS + RESTART_LOOP_MS_PER_GIB * gib || faults != 0 || cpu_ms * 4 < ms)
			return;
		snprintf(evidence, sizeof(evidence), "in the call for %" PRIu64 " ms, %" PRIu64 " ms of CPU, no fault", ms, cpu_ms);
		report_hang(step, op, "restart-loop", false, 0, evidence);
	}
}

static void *uffd_watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&watch_lock);
		while (!watch_active)
			pthread_cond_wait(&watch_cond, &watch_lock);
		struct pollfd p[2] = { { .fd = watch_fd, .events = POLLIN }, { .fd = watch_wake_fd, .events = POLLIN } };
		unsigned step = watch_step;
		const char *op = watch_op;
		enum watch_kind kind = watch_kind;
		uint64_t pages = watch_pages;
		watch_polling = true;
		pthread_mutex_unlock(&watch_lock);

		struct main_sample start = sample_main(), last = start;
		for (;;) {
			int n = poll(p, 2, kind == WATCH_OTHER ? -1 : WATCH_TICK_MS);
			if (n < 0 && errno != EINTR)
				break;
			if (n == 0)
				check_loops(step, op, kind, pages, &start, &last);
			if (n <= 0)
				continue;
			if (p[1].revents)
				break; /* the step returned */
			if (!(p[0].revents & POLLIN)) {
				p[0].fd = -1; /* POLLERR/POLLHUP: nothing to read */
				continue;
			}
			if (uffd_pending_faults(p[0].fd) <= 0) {
				p[0].fd = -1; /* a non-cooperative event: leave it unread (see above) */
				continue;
			}
			struct uffd_msg msg;
			if (read(p[0].fd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg) && msg.event == UFFD_EVENT_PAGEFAULT)
				report_userfault(step, op, &msg);
			/* EAGAIN: the faulting thread was woken (by SIGALRM) and retries; poll again. */
		}

		uint64_t count;
		ssize_t drained = read(watch_wake_fd, &count, sizeof(count));
		(void)drained;
		pthread_mutex_lock(&watch_lock);
		watch_polling = false;
		pthread_cond_broadcast(&watch_cond);
		pthread_mutex_unlock(&watch_lock);
	}
	return NULL;
}

/* Start the watchdog thread (once, from harness_init()). On failure there is none, and a blocked
 * or looping step is reported as a hang, as before. */
static void uffd_watch_start(void)
{
	if (watch_started)
		return;
	watch_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch_wake_fd < 0)
		return;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, watch_stack, sizeof(watch_stack));
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread starts with every signal blocked */
	pthread_t thread;
	watch_started = pthread_create(&thread, &attr, uffd_watchdog, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!watch_started) {
		close(watch_wake_fd);
		watch_wake_fd = -1;
	}
}

/* A read, write or madvise step is about to run: watch the uffd, if one is open, and the main
 * thread for loops (see "loops the kernel never leaves"); `pages`: a madvise's range. */
static void uffd_watch_begin(unsigned step, const char *op, enum watch_kind kind, uint64_t pages)
{
	if (!watch_started)
		return;
	pthread_mutex_lock(&watch_lock);
	watch_fd = uffd;
	watch_step = step;
	watch_op = op;
	watch_kind = kind;
	watch_pages = pages;
	watch_active = true;
	pthread_cond_broadcast(&watch_cond);
	pthread_mutex_unlock(&watch_lock);
	watch_on = true;
}

/* The step returned: stop watching, and wait until the thread no longer polls the uffd. */
static void uffd_watch_end(void)
{
	if (!watch_on)
		return;
	watch_on = false;
	pthread_mutex_lock(&watch_lock);
	watch_fd = -1;
	watch_active = false;
	if (watch_polling) {
		uint64_t one = 1;
		ssize_t w = write(watch_wake_fd, &one, sizeof(one));
		(void)w;
		while (watch_polling)
			pthread_cond_wait(&watch_cond, &watch_lock);
	}
	pthread_mutex_unlock(&watch_lock);
}

static bool report_unsupported(unsigned step, const char *op, const char *why)
{
	end_step();
	if (output_mode == OUTPUT_CONTRACT) {
		/* Not a result: the document ends with why. */
		snprintf(stop_message, sizeof(stop_message), "%s: cannot be reproduced on this kernel: %s", op, why);
		print_end("stopped", step, "unsupported");
		return false;
	}
	print_head(step, op, -1, NULL);
	printf(",\"unsupported\":");
	json_string(why);
	printf("}\n");
	print_end("stopped", step, "unsupported");
	return false;
}

/* Steps must not touch the harness's own memory (its code, stack, the scan output array): refuse
 * them rather than crash or report results the scenario did not cause. */
#define GUARD_RANGE(step, op, addr, size)                                             \
	do {                                                                          \
		const char *why_ = harness_overlap((addr), (size));                    \
		if (why_)                                                             \
			return report_unsupported((step), (op), why_);                \
	} while (0)

static const char *harness_overlap(uint64_t addr, uint64_t size)
{
	static char why[512];
	uint64_t end = addr + size < addr ? UINT64_MAX : addr + size;
	for (int i = 0; i < n_harness_maps; i++) {
		const struct harness_map *m = &harness_maps[i];
		if (addr < m->end && end > m->start) {
			snprintf(why, sizeof(why),
				 "range 0x%" PRIx64 "-0x%" PRIx64 " overlaps the harness's own mapping 0x%" PRIx64
				 "-0x%" PRIx64 " %s",
				 addr, end, m->start, m->end, m->name);
			return why;
		}
	}
	return NULL;
}

/* The common tail of a simple step: print the result; a failure stops the scenario unless the step
 * may fail. Returns whether to go on. */
static bool finish(unsigned step, const char *op, bool may_fail, long ret, int err)
{
	end_step();
	print_head(step, op, ret, ret < 0 ? errno_name(err) : NULL);
	printf(output_mode == OUTPUT_CONTRACT ? "}" : "}\n");
	fflush(stdout);
	if (ret < 0 && !may_fail) {
		snprintf(stop_message, sizeof(stop_message), "%s failed with %s (add may_fail: true to make it a result)",
			 op, errno_name(err));
		print_end("stopped", step, "failed");
		return false;
	}
	return true;
}

/* ---- harness set-up ------------------------------------------------------------------------- */

static void read_own_maps(void)
{
	static char buf[1 << 16];
	size_t len = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;

	for (char *line = buf; *line && n_harness_maps < MAX_HARNESS_MAPS;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		struct harness_map *m = &harness_maps[n_harness_maps];
		m->name[0] = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %*s %*s %*s %255[^\n]", &m->start, &m->end, m->name) >= 2) {
			if (!m->name[0])
				strcpy(m->name, "[anonymous]");
			n_harness_maps++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
}

/* A trivial PAGEMAP_SCAN (empty range, no output): 0 on a kernel that has the ioctl. */
static int probe_pagemap_scan(void)
{
	struct pm_scan_arg arg = { .size = sizeof(arg), .start = VEC_ADDR, .end = VEC_ADDR };
	return ioctl(pagemap_fd, PAGEMAP_SCAN, &arg) < 0 ? errno : 0;
}

/* Which userfaultfd features the kernel offers; returns 0 or an errno. */
static int probe_userfaultfd(uint64_t *features)
{
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int err = ioctl(fd, UFFDIO_API, &api) < 0 ? errno : 0;
	*features = api.features;
	close(fd);
	return err;
}

/* Set up the harness and print its first line (OUTPUT_CONTRACT: the head of the document). Exits
 * with status 3 when the kernel has no PAGEMAP_SCAN (nothing here could be reproduced). */
static void harness_init(unsigned timeout_ms, unsigned limit_ms)
{
	step_timeout_ms = timeout_ms ? timeout_ms : 1;
	step_limit_ms = limit_ms;
	setvbuf(stdout, stdout_buf, _IOFBF, sizeof(stdout_buf));

	/* The steps run on one CPU: MADV_PAGEOUT and MADV_COLD drain only this CPU's LRU batches
	 * (lru_add_drain()), so a page faulted in on another CPU could still sit in that CPU's batch,
	 * fail to be isolated and stay mapped, at random. */
	int cpu = sched_getcpu();
	if (cpu >= 0) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
	}

	/* SA_NODEFER: the fault handler leaves with siglongjmp, so it must not leave SIGSEGV blocked;
	 * that lets touch_one() use a cheap sigsetjmp(..., 0). */
	struct sigaction sa = { .sa_handler = on_fault, .sa_flags = SA_NODEFER };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sa = (struct sigaction){ .sa_handler = on_alarm };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int vec_err = 0;
	void *vec = mmap(ptr(VEC_ADDR), VEC_CAPACITY * sizeof(struct page_region), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (vec == MAP_FAILED)
		vec_err = errno;
	else if (vec != ptr(VEC_ADDR))
		vec_err = EEXIST;

	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int pagemap_err = pagemap_fd < 0 ? errno : probe_pagemap_scan();
	uint64_t uffd_features = 0;
	int uffd_err = probe_userfaultfd(&uffd_features);

	/* The watchdog thread (userfaultfd messages, loops) samples this thread while steps run. */
	main_tid = (pid_t)syscall(SYS_gettid);
	main_cpu_clock_ok = pthread_getcpuclockid(pthread_self(), &main_cpu_clock) == 0;
	uffd_watch_start();

	read_own_maps();

	struct utsname u;
	uname(&u);
	if (output_mode == OUTPUT_CONTRACT) {
		if (vec_err || pagemap_err) {
			fprintf(stderr, "%s: %s (%s)\n", scenario_name,
				vec_err ? "cannot map the scan output array at 0x600000000000"
					: "PAGEMAP_SCAN is not available on this kernel (it needs Linux 6.7 or later)",
				errno_name(vec_err ? vec_err : pagemap_err));
			exit(3);
		}
		printf("{\n  \"scenario\": ");
		json_string(scenario_name);
		printf(",\n  \"kernel\": ");
		json_string(u.release);
		printf(",\n  \"steps\": [");
		fflush(stdout);
		return;
	}
	printf("{\"harness\":{\"pid\":%d,\"kernel\":", (int)getpid());
	json_string(u.release);
	printf(",\"machine\":");
	json_string(u.machine);
	printf(",\"page_size\":%ld", sysconf(_SC_PAGESIZE));
	/* Each probe: "ok" or the errno name. */
	printf(",\"vec\":\"%s\"", vec_err ? errno_name(vec_err) : "ok");
	printf(",\"pagemap_scan\":\"%s\"", pagemap_err ? errno_name(pagemap_err) : "ok");
	printf(",\"userfaultfd\":\"%s\"", uffd_err ? errno_name(uffd_err) : "ok");
	printf(",\"uffd_features\":\"0x%" PRIx64 "\"", uffd_features);
	printf(",\"step_timeout_ms\":%u,\"step_limit_ms\":%u,\"maps\":[", step_timeout_ms, step_limit_ms);
	for (int i = 0; i < n_harness_maps; i++) {
		printf("%s{\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"name\":", i ? "," : "",
		       harness_maps[i].start, harness_maps[i].end);
		json_string(harness_maps[i].name);
		printf("}");
	}
	printf("]}}\n");
	fflush(stdout);

	if (vec_err || pagemap_err) {
		printf("{\"end\":\"environment\",\"reason\":\"%s\"}\n",
		       vec_err ? "cannot map the scan output array" : "PAGEMAP_SCAN is not available");
		fflush(stdout);
		exit(3);
	}
}

/* ---- step functions ------------------------------------------------------------------------- */

/* A fresh file of `size` bytes for a file-backed mapping: a regular file under FILE_DIR (unlinked
 * at once, so nothing is left behind even if the harness dies; the fd and then the mapping keep
 * it alive) or a memfd. Returns an fd or -1 with errno set. */
static int backing_file(bool memfd, uint64_t size)
{
	int fd;
	if (memfd) {
		fd = memfd_create("pagemap-scan", MFD_CLOEXEC);
	} else {
		char path[] = FILE_DIR "/pagemap-scan-XXXXXX";
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* mmap at exactly addr (MAP_FIXED_NOREPLACE: EEXIST when something is there already). */
bool do_mmap(unsigned step, bool may_fail, uint64_t addr, uint64_t size, const char *kind, int prot)
{
	begin_step(step, "mmap");
	GUARD_RANGE(step, "mmap", addr, size);

	int flags = MAP_FIXED_NOREPLACE, fd = -1;
	if (!strcmp(kind, "anon"))
		flags |= MAP_PRIVATE | MAP_ANONYMOUS;
	else if (!strcmp(kind, "shared-anon"))
		flags |= MAP_SHARED | MAP_ANONYMOUS;
	else if (!strcmp(kind, "file-private") || !strcmp(kind, "memfd-private"))
		flags |= MAP_PRIVATE;
	else if (!strcmp(kind, "file-shared") || !strcmp(kind, "memfd-shared"))
		flags |= MAP_SHARED;
	else if (!strcmp(kind, "hugetlb"))
		flags |= MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
	else if (!strcmp(kind, "hugetlb-shared"))
		flags |= MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
	else if (!strcmp(kind, "hugetlb-1g"))
		flags |= MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB;
	else if (!strcmp(kind, "pfnmap"))
		return report_unsupported(step, "mmap", "pfnmap mappings are not supported on this kernel harness");
	else
		return report_unsupported(step, "mmap", "unknown mapping kind");

	if (!(flags & MAP_ANONYMOUS)) {
		fd = backing_file(!strncmp(kind, "memfd", 5), size);
		if (fd < 0)
			return finish(step, "mmap", may_fail, -1, errno);
	}
	void *p = mmap(ptr(addr), size, prot, flags, fd, 0);
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (p != MAP_FAILED && p != ptr(addr)) {
		/* An old kernel that treats MAP_FIXED_NOREPLACE as a hint. */
		munmap(p, size);
		p = MAP_FAILED;
		err = EEXIST;
	}
	return finish(step, "mmap", may_fail, p == MAP_FAILED ? -1 : 0, err);
}

bool do_munmap(unsigned step, bool may_fail, uint64_t addr, uint64_t size)
{
	begin_step(step, "munmap");
	GUARD_RANGE(step, "munmap", addr, size);
	int ret = munmap(ptr(addr), size);
	return finish(step, "munmap", may_fail, ret, errno);
}

bool do_mprotect(unsigned step, bool may_fail, uint64_t addr, uint64_t size, int prot)
{
	begin_step(step, "mprotect");
	GUARD_RANGE(step, "mprotect", addr, size);
	int ret = mprotect(ptr(addr), size, prot);
	return finish(step, "mprotect", may_fail, ret, errno);
}

/* The system's pages under writeback (nr_writeback in /proc/vmstat), or -1. */
static long pages_under_writeback(void)
{
	return proc_number("/proc/vmstat", "\nnr_writeback ");
}

/* MADV_PAGEOUT starts swap (and file) writeback and returns: a page touched again before that I/O
 * ends is still in the swap cache under writeback, and reclaim skips it. That is a race with the
 * disk, not a rule, so the steps wait (up to 1 s) for the writeback to end, as a program that does
 * anything else in between would. */
static void wait_for_writeback(void)
{
	uint64_t until = clock_ns(CLOCK_MONOTONIC) + 1000000000u;
	while (pages_under_writeback() > 0 && clock_ns(CLOCK_MONOTONIC) < until)
		usleep(200);
}

/* lru_add_drain_all(): migrate_pages(2) from node 0 to node 0 drains every CPU's LRU batches and
 * moves nothing. Folios a fault just added sit in such a batch, off the LRU, until it fills or
 * something drains it; MADV_PAGEOUT and MADV_COLD cannot isolate them then and skip them, at
 * random. A program that runs for a while never sees that window; the steps do not either. */
static void drain_lru_batches(void)
{
#ifdef SYS_migrate_pages
	unsigned long node0 = 1;
	syscall(SYS_migrate_pages, 0, 8 * sizeof(node0), &node0, &node0);
#endif
}

bool do_madvise(unsigned step, bool may_fail, uint64_t addr, uint64_t size, int advice)
{
	begin_step(step, "madvise");
	GUARD_RANGE(step, "madvise", addr, size);
	enum watch_kind kind = WATCH_OTHER;
	if (advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE)
		kind = WATCH_POPULATE;
	else if (advice != MADV_COLLAPSE && advice != MADV_PAGEOUT && advice != MADV_COLD && advice != MADV_WILLNEED &&
		 advice != MADV_REMOVE)
		kind = WATCH_MADVISE; /* no allocation, no I/O: one walk of the range */
	if (advice == MADV_PAGEOUT || advice == MADV_COLD)
		drain_lru_batches();
	uffd_watch_begin(step, "madvise", kind, (size + PAGE_SIZE - 1) / PAGE_SIZE);
	int ret = madvise(ptr(addr), size, advice);
	int err = errno;
	if (advice == MADV_PAGEOUT)
		wait_for_writeback();
	return finish(step, "madvise", may_fail, ret, err);
}

/* Load or store the byte at addr. Returns 0, or the signal (SIGSEGV/SIGBUS) if it faulted. */
static int touch_one(uint64_t addr, bool write)
{
	if (sigsetjmp(fault_jmp, 0)) {
		in_touch = 0;
		return fault_signal;
	}
	in_touch = 1;
	atomic_store_explicit(&touch_addr, addr, memory_order_relaxed);
	atomic_fetch_add_explicit(&touch_seq, 1, memory_order_relaxed);
	volatile uint8_t *p = ptr(addr);
	if (write)
		*p = 0x5a;
	else
		(void)*p;
	in_touch = 0;
	return 0;
}

/* Touch one byte at addr and every `stride` bytes after it, below addr+size: a load (read) or a
 * store (write). A SIGSEGV/SIGBUS is the step's result; with may_fail the touch goes on with the
 * next address, without it the scenario stops there. */
bool do_touch(unsigned step, bool may_fail, bool write, uint64_t addr, uint64_t size, uint64_t stride)
{
	const char *op = write ? "write" : "read";
	begin_step(step, op);
	GUARD_RANGE(step, op, addr, size);
	if (stride == 0)
		return finish(step, op, may_fail, -1, EINVAL);
	uffd_watch_begin(step, op, WATCH_TOUCH, 0);

	uint64_t faults = 0, first_fault = 0;
	int first_signal = 0;
	for (uint64_t off = 0; off < size; off += stride) {
		int sig = touch_one(addr + off, write);
		if (!sig)
			continue;
		if (faults++ == 0) {
			first_fault = addr + off;
			first_signal = sig;
		}
		if (!may_fail)
			break;
	}

	end_step();
	if (faults == 0)
		return finish(step, op, may_fail, 0, 0);
	const char *sig = first_signal == SIGBUS ? "SIGBUS" : "SIGSEGV";
	print_head(step, op, -1, sig);
	if (output_mode == OUTPUT_CONTRACT)
		printf("}");
	else
		printf(",\"fault_addr\":\"0x%" PRIx64 "\",\"faults\":%" PRIu64 "}\n", first_fault, faults);
	fflush(stdout);
	if (!may_fail) {
		snprintf(stop_message, sizeof(stop_message),
			 "%s failed with %s at 0x%" PRIx64 " (add may_fail: true to make it a result)", op, sig, first_fault);
		print_end("stopped", step, "failed");
		return false;
	}
	return true;
}

/* userfaultfd(O_CLOEXEC | O_NONBLOCK) + UFFDIO_API with `features`; replaces any open one. */
bool do_uffd_open(unsigned step, bool may_fail, uint64_t features)
{
	begin_step(step, "uffd_open");
	if (uffd >= 0) {
		close(uffd);
		uffd = -1;
	}
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return finish(step, "uffd_open", may_fail, -1, errno);
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = errno;
		close(fd);
		return finish(step, "uffd_open", may_fail, -1, err);
	}
	uffd = fd;
	return finish(step, "uffd_open", may_fail, 0, 0);
}

bool do_uffd_close(unsigned step, bool may_fail)
{
	begin_step(step, "uffd_close");
	int ret = close(uffd);
	int err = errno;
	uffd = -1;
	return finish(step, "uffd_close", may_fail, ret, err);
}

bool do_uffd_register(unsigned step, bool may_fail, uint64_t addr, uint64_t size, uint64_t mode)
{
	begin_step(step, "uffd_register");
	GUARD_RANGE(step, "uffd_register", addr, size);
	struct uffdio_register reg = { .range = { .start = addr, .len = size }, .mode = mode };
	int ret = ioctl(uffd, UFFDIO_REGISTER, &reg);
	return finish(step, "uffd_register", may_fail, ret, errno);
}

bool do_uffd_unregister(unsigned step, bool may_fail, uint64_t addr, uint64_t size)
{
	begin_step(step, "uffd_unregister");
	GUARD_RANGE(step, "uffd_unregister", addr, size);
	struct uffdio_range range = { .start = addr, .len = size };
	int ret = ioctl(uffd, UFFDIO_UNREGISTER, &range);
	return finish(step, "uffd_unregister", may_fail, ret, errno);
}

bool do_uffd_writeprotect(unsigned step, bool may_fail, uint64_t addr, uint64_t size, bool wp)
{
	begin_step(step, "uffd_writeprotect");
	GUARD_RANGE(step, "uffd_writeprotect", addr, size);
	struct uffdio_writeprotect w = {
		.range = { .start = addr, .len = size },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int ret = ioctl(uffd, UFFDIO_WRITEPROTECT, &w);
	return finish(step, "uffd_writeprotect", may_fail, ret, errno);
}

/* Write `value` (in decimal) to /proc/self/clear_refs. */
bool do_clear_refs(unsigned step, bool may_fail, uint64_t value)
{
	begin_step(step, "clear_refs");
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return finish(step, "clear_refs", may_fail, -1, errno);
	char text[32];
	int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", value);
	long ret = write(fd, text, (size_t)len);
	int err = errno;
	close(fd);
	return finish(step, "clear_refs", may_fail, ret < 0 ? -1 : 0, err);
}

/* PAGE_IS_* names, in bit order (keep in sync with CATEGORY_NAMES in src/uapi.ts). */
static const char *const category_names[] = {
	"WPALLOWED", "WRITTEN", "FILE", "PRESENT", "SWAPPED", "PFNZERO", "HUGE", "SOFT_DIRTY", "GUARD",
};

/* ["WRITTEN","PRESENT"]: the names of the bits set, in bit order (the kernel sets no others). */
static void print_category_names(uint64_t categories)
{
	bool first = true;
	putchar('[');
	for (unsigned bit = 0; bit < sizeof(category_names) / sizeof(category_names[0]); bit++) {
		if (!(categories & (1ULL << bit)))
			continue;
		printf("%s\"%s\"", first ? "" : ",", category_names[bit]);
		first = false;
	}
	putchar(']');
}

/* PAGEMAP_SCAN with exactly `arg` (walk_end aside: when it is page aligned it is replaced by an
 * unaligned sentinel, so that "not written back" can be told apart). Never stops the scenario. */
bool do_pagemap_scan(unsigned step, struct pm_scan_arg arg)
{
	begin_step(step, "pagemap_scan");
	struct page_region *vec = ptr(VEC_ADDR);
	uint64_t slots = arg.vec == VEC_ADDR ? (arg.vec_len < VEC_CAPACITY ? arg.vec_len : VEC_CAPACITY) : 0;
	for (uint64_t i = 0; i < slots; i++)
		vec[i] = (struct page_region){ REGION_SENTINEL, REGION_SENTINEL, REGION_SENTINEL };
	if (arg.walk_end % PAGE_SIZE == 0)
		arg.walk_end = WALK_END_SENTINEL;
	uint64_t sentinel = arg.walk_end;

	long ret = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
	int err = errno;
	end_step();

	/* On success exactly `ret` regions were written; on failure, the ones copied out before it. */
	uint64_t n = 0;
	if (ret >= 0)
		n = (uint64_t)ret < slots ? (uint64_t)ret : slots;
	else
		while (n < slots && vec[n].start != REGION_SENTINEL)
			n++;

	print_head(step, "pagemap_scan", ret, ret < 0 ? errno_name(err) : NULL);
	if (arg.walk_end == sentinel)
		printf(",\"walk_end\":null");
	else
		printf(",\"walk_end\":\"0x%" PRIx64 "\"", (uint64_t)arg.walk_end);
	printf(",\"regions\":[");
	for (uint64_t i = 0; i < n; i++) {
		printf("%s{\"start\":\"0x%llx\",\"end\":\"0x%llx\",\"categories\":", i ? "," : "",
		       (unsigned long long)vec[i].start, (unsigned long long)vec[i].end);
		if (output_mode == OUTPUT_CONTRACT)
			print_category_names(vec[i].categories);
		else
			printf("%llu", (unsigned long long)vec[i].categories);
		printf("}");
	}
	printf(output_mode == OUTPUT_CONTRACT ? "]}" : "]}\n");
	fflush(stdout);
	return true;
}

/* ==== replay: stdin driver (export-c.ts keeps only what is above this line) ==================== */

/*
 * Protocol: one step per line, whitespace-separated; numbers are hex (a 0x prefix is allowed).
 *
 *   <op> <step> <may_fail> <args...>
 *
 *   mmap              STEP MAYFAIL ADDR SIZE KIND PROT      KIND: anon, shared-anon, file-private, ...
 *   munmap            STEP MAYFAIL ADDR SIZE
 *   mprotect          STEP MAYFAIL ADDR SIZE PROT
 *   madvise           STEP MAYFAIL ADDR SIZE ADVICE
 *   read | write      STEP MAYFAIL ADDR SIZE STRIDE
 *   uffd_open         STEP MAYFAIL FEATURES
 *   uffd_close        STEP MAYFAIL
 *   uffd_register     STEP MAYFAIL ADDR SIZE MODE
 *   uffd_unregister   STEP MAYFAIL ADDR SIZE
 *   uffd_writeprotect STEP MAYFAIL ADDR SIZE WP           WP: 0 or 1
 *   clear_refs        STEP MAYFAIL VALUE
 *   pagemap_scan      STEP MAYFAIL SIZE FLAGS START END WALK_END VEC VEC_LEN MAX_PAGES
 *                                  CATEGORY_INVERTED CATEGORY_MASK CATEGORY_ANYOF_MASK RETURN_MASK
 *
 * Empty lines and lines starting with '#' are ignored.
 * Usage: replay [--step-timeout-ms N] [--step-limit-ms N] < steps
 *   --step-timeout-ms: a step blocked (using no CPU) this long is a hang (default 5000)
 *   --step-limit-ms:   a step running this long in all is a hang (default 60000)
 */

static char line[4096];

_Noreturn static void protocol_error(unsigned lineno, const char *what)
{
	printf("{\"end\":\"protocol-error\",\"line\":%u,\"reason\":", lineno);
	json_string(what);
	printf("}\n");
	fflush(stdout);
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned timeout_ms = 5000, limit_ms = 60000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--step-timeout-ms") && i + 1 < argc) {
			timeout_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--step-limit-ms") && i + 1 < argc) {
			limit_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: %s [--step-timeout-ms N] [--step-limit-ms N] < steps\n", argv[0]);
			return 2;
		}
	}
	static char stdin_buf[1 << 16];
	setvbuf(stdin, stdin_buf, _IOFBF, sizeof(stdin_buf));
	harness_init(timeout_ms, limit_ms);

	unsigned lineno = 0;
	while (fgets(line, sizeof(line), stdin)) {
		lineno++;
		char *words[20];
		int n = 0;
		for (char *w = strtok(line, " \t\r\n"); w && n < 20; w = strtok(NULL, " \t\r\n"))
			words[n++] = w;
		if (n == 0 || words[0][0] == '#')
			continue;
		if (n < 3)
			protocol_error(lineno, "expected: OP STEP MAY_FAIL ARGS...");

		uint64_t a[16] = { 0 };
		int nargs = n - 3;
		for (int i = 0; i < nargs; i++) {
			char *end;
			errno = 0;
			a[i] = strtoull(words[3 + i], &end, 16);
			if (errno || *end) {
				/* Only mmap's KIND is not a number. */
				if (!(!strcmp(words[0], "mmap") && i == 2))
					protocol_error(lineno, "bad number");
			}
		}
		const char *op = words[0];
		unsigned step = (unsigned)strtoul(words[1], NULL, 16);
		bool may_fail = strtoul(words[2], NULL, 16) != 0;
		bool go_on;

#define NARGS(k)                                                   \
	do {                                                       \
		if (nargs != (k))                                  \
			protocol_error(lineno, "wrong number of arguments"); \
	} while (0)

		if (!strcmp(op, "mmap")) {
			NARGS(4);
			go_on = do_mmap(step, may_fail, a[0], a[1], words[5], (int)a[3]);
		} else if (!strcmp(op, "munmap")) {
			NARGS(2);
			go_on = do_munmap(step, may_fail, a[0], a[1]);
		} else if (!strcmp(op, "mprotect")) {
			NARGS(3);
			go_on = do_mprotect(step, may_fail, a[0], a[1], (int)a[2]);
		} else if (!strcmp(op, "madvise")) {
			NARGS(3);
			go_on = do_madvise(step, may_fail, a[0], a[1], (int)a[2]);
		} else if (!strcmp(op, "read") || !strcmp(op, "write")) {
			NARGS(3);
			go_on = do_touch(step, may_fail, op[0] == 'w', a[0], a[1], a[2]);
		} else if (!strcmp(op, "uffd_open")) {
			NARGS(1);
			go_on = do_uffd_open(step, may_fail, a[0]);
		} else if (!strcmp(op, "uffd_close")) {
			NARGS(0);
			go_on = do_uffd_close(step, may_fail);
		} else if (!strcmp(op, "uffd_register")) {
			NARGS(3);
			go_on = do_uffd_register(step, may_fail, a[0], a[1], a[2]);
		} else if (!strcmp(op, "uffd_unregister")) {
			NARGS(2);
			go_on = do_uffd_unregister(step, may_fail, a[0], a[1]);
		} else if (!strcmp(op, "uffd_writeprotect")) {
			NARGS(3);
			go_on = do_uffd_writeprotect(step, may_fail, a[0], a[1], a[2] != 0);
		} else if (!strcmp(op, "clear_refs")) {
			NARGS(1);
			go_on = do_clear_refs(step, may_fail, a[0]);
		} else if (!strcmp(op, "pagemap_scan")) {
			NARGS(12);
			struct pm_scan_arg arg = {
				.size = a[0], .flags = a[1], .start = a[2], .end = a[3],
				.walk_end = a[4], .vec = a[5], .vec_len = a[6], .max_pages = a[7],
				.category_inverted = a[8], .category_mask = a[9],
				.category_anyof_mask = a[10], .return_mask = a[11],
			};
			go_on = do_pagemap_scan(step, arg);
		} else {
			protocol_error(lineno, "unknown op");
		}
		if (!go_on)
			return 0;
	}
	print_end("complete", 0, NULL);
	return 0;
}
