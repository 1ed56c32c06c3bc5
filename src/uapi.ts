// The user ABI of PAGEMAP_SCAN and userfaultfd, as in include/uapi/linux/fs.h and
// include/uapi/linux/userfaultfd.h. Field values at this boundary are u64 (bigint).

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PMD_SIZE = 2 * 1024 * 1024;
export const PUD_SIZE = 1024 * 1024 * 1024;
/** x86-64 with 4-level paging: the highest user address + 1 accepted by access_ok(). */
export const TASK_SIZE_MAX = 0x7ffffffff000;
export const U64_MAX = (1n << 64n) - 1n;

/** PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg) */
export const PAGEMAP_SCAN_IOCTL = 0xc0606610;
export const PM_SCAN_ARG_SIZE = 96n;
export const PAGE_REGION_SIZE = 24n;

/** PAGE_IS_* category bits, in bit order. */
export const CATEGORY_NAMES = [
  'WPALLOWED',
  'WRITTEN',
  'FILE',
  'PRESENT',
  'SWAPPED',
  'PFNZERO',
  'HUGE',
  'SOFT_DIRTY',
  'GUARD',
] as const;
export type CategoryName = (typeof CATEGORY_NAMES)[number];

export const PAGE_IS_WPALLOWED = 1 << 0;
export const PAGE_IS_WRITTEN = 1 << 1;
export const PAGE_IS_FILE = 1 << 2;
export const PAGE_IS_PRESENT = 1 << 3;
export const PAGE_IS_SWAPPED = 1 << 4;
export const PAGE_IS_PFNZERO = 1 << 5;
export const PAGE_IS_HUGE = 1 << 6;
export const PAGE_IS_SOFT_DIRTY = 1 << 7;
export const PAGE_IS_GUARD = 1 << 8;
export const PM_SCAN_CATEGORIES = 0x1ff;

export const FLAG_NAMES = ['WP_MATCHING', 'CHECK_WPASYNC'] as const;
export type FlagName = (typeof FLAG_NAMES)[number];
export const PM_SCAN_WP_MATCHING = 1 << 0;
export const PM_SCAN_CHECK_WPASYNC = 1 << 1;
export const PM_SCAN_FLAGS = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;

/** struct pm_scan_arg; every field is a u64. */
export interface PmScanArg {
  size: bigint;
  flags: bigint;
  start: bigint;
  end: bigint;
  walk_end: bigint;
  vec: bigint;
  vec_len: bigint;
  max_pages: bigint;
  category_inverted: bigint;
  category_mask: bigint;
  category_anyof_mask: bigint;
  return_mask: bigint;
}

/** struct page_region */
export interface PageRegion {
  start: number;
  end: number;
  categories: number;
}

/** UFFD_FEATURE_* bits (include/uapi/linux/userfaultfd.h). */
export const UFFD_FEATURES = {
  PAGEFAULT_FLAG_WP: 1 << 0,
  EVENT_FORK: 1 << 1,
  EVENT_REMAP: 1 << 2,
  EVENT_REMOVE: 1 << 3,
  MISSING_HUGETLBFS: 1 << 4,
  MISSING_SHMEM: 1 << 5,
  EVENT_UNMAP: 1 << 6,
  SIGBUS: 1 << 7,
  THREAD_ID: 1 << 8,
  MINOR_HUGETLBFS: 1 << 9,
  MINOR_SHMEM: 1 << 10,
  EXACT_ADDRESS: 1 << 11,
  WP_HUGETLBFS_SHMEM: 1 << 12,
  WP_UNPOPULATED: 1 << 13,
  POISON: 1 << 14,
  WP_ASYNC: 1 << 15,
  MOVE: 1 << 16,
} as const;
export type UffdFeatureName = keyof typeof UFFD_FEATURES;
export const UFFD_API_FEATURES = Object.values(UFFD_FEATURES).reduce((a, b) => a | b, 0);

/** UFFDIO_REGISTER_MODE_* */
export const UFFD_REGISTER_MODES = { MISSING: 1 << 0, WP: 1 << 1, MINOR: 1 << 2 } as const;
export type UffdRegisterModeName = keyof typeof UFFD_REGISTER_MODES;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

/** Errno values on x86-64, by name. SIGSEGV/SIGBUS stand for a faulting touch. */
export const ERRNO = {
  EPERM: 1,
  EACCES: 13,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  ERANGE: 34,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ENOTTY: 25,
  EOVERFLOW: 75,
} as const;
export type ErrnoName = keyof typeof ERRNO | 'SIGSEGV' | 'SIGBUS';

export function categoryNames(categories: number): CategoryName[] {
  return CATEGORY_NAMES.filter((_, bit) => categories & (1 << bit));
}
