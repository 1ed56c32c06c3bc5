// Differences between the engine (src/) and the kernel that the reference models, confirmed on
// Linux 6.18.44, each with the kernel-recorded scenarios that show it (kernel-cases/; hugetlb with
// `record --setup-hugetlb N`), or, where the harness cannot record one (a step that never
// returns), read from the kernel source with no scenario. While a bug is listed here:
//   - a property-test case whose reference run exercised that rule (RefRun.notes, recorded with
//     RefMm.note()) may differ from the engine without failing (PAGEMAP_PROPERTY_STRICT=1 fails
//     them too);
//   - reference.test.ts expects its scenarios to fail on the engine, and says so when they pass:
//     then remove the entry (and its note() calls), and the property test holds the engine to it.
//
// Found by the property tests and the kernel checks of the reference, now fixed in the engine
// (their kernel-cases/ stay as regression tests the engine must pass): munmap keeping guard
// markers (munmap-drops-guards), uffd_close without a context (uffd-close-ebadf), MADV_FREE +
// MADV_PAGEOUT (free-then-pageout, free-pageout-wp), re-registering a subset of modes
// (register-subset-noop), VMA merging with VM_ACCOUNT and anon_vmas (vma-merge-account,
// vma-merge-anon-vma), MADV_POPULATE_* errno (populate-einval), a stale uffd-wp bit on a writable
// PTE (stale-wp-writable), UFFD_FEATURE_SIGBUS (uffd-sigbus), mmap's ENOMEM before EINVAL
// (mmap-unaligned-top), clear_refs ERANGE, a write to a hugetlb page whose uffd-wp bit outlived the
// VMA's WP registration (hugetlb-stale-wp-write: a fault loop, now a hang result recorded from the
// kernel in scenarios/hang-hugetlb-stale-wp.yaml), the hugetlb pool (hugetlb-pool-*: mmap reserves
// against free - reserved pages, a freed private page restores its reservation, a shared file keeps
// pages and reservations until its last VMA goes, a hole punch keeps those of unfaulted indices, a
// fault with no page is SIGBUS), MADV_PAGEOUT of a clean shmem page dropping it from the cache
// (shmem-pageout-clean), UFFDIO_UNREGISTER un-protecting a whole huge page before its split fails
// (hugetlb-unregister-partial), MADV_FREE splitting a PTE-mapped THP it covers in part
// (thp-free-splits-partial-folio), MADV_PAGEOUT of lazily-freed THPs (thp-pageout-lazyfree),
// MADV_GUARD_INSTALL again over write-protected guard markers returning (shmem-guard-wp-reinstall).

export interface KnownBugEntry {
  scenarios: readonly string[];
  what: string;
}

export const KNOWN_BUGS = {} satisfies Record<string, KnownBugEntry>;

export type KnownBug = keyof typeof KNOWN_BUGS;

/**
 * Bugs that only change the errno of the step where they happen (the state stays the same): the
 * comparison goes on after such a step. The others change state, so a run that exercised them is
 * not compared past its first difference.
 */
export const RESULT_ONLY: ReadonlySet<KnownBug> = new Set<KnownBug>();
