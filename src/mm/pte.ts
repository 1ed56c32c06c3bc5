// Page-table entries as small integers, so that runs of equal entries compare with ===.
// The kernel's pte_t is a machine word too; here the bits are ours, the predicates are the
// kernel's (include/linux/pgtable.h, swapops.h, userfaultfd_k.h).
//
// A PTE slot that holds no entry is pte_none and is simply absent from the map.

/** Entry kinds (bits 0-3). */
export const PTE_PRESENT = 1;
/** A genuine swap entry. */
export const PTE_SWAP = 2;
/** make_pte_marker(PTE_MARKER_UFFD_WP) */
export const PTE_MARKER_UFFD_WP = 3;
/** make_pte_marker(PTE_MARKER_GUARD) */
export const PTE_MARKER_GUARD = 4;
/** make_pte_marker(PTE_MARKER_POISONED) */
export const PTE_MARKER_POISONED = 5;
const KIND_MASK = 0xf;

/** pte_uffd_wp() on present entries, pte_swp_uffd_wp() on swap-format ones. */
export const PTE_UFFD_WP = 1 << 4;
export const PTE_SOFT_DIRTY = 1 << 5;
/** The entry maps the shared zero page (is_zero_pfn). */
export const PTE_ZERO = 1 << 6;
/** The mapped page is not anonymous (page cache, shmem): !PageAnon. */
export const PTE_FILE = 1 << 7;
/** The mapped page is part of a large folio (a THP whose PMD mapping was split). */
export const PTE_LARGE_FOLIO = 1 << 8;
/** pte_special(): a PFN with no struct page behind it (VM_PFNMAP). */
export const PTE_SPECIAL = 1 << 9;
/** A clean anonymous page freed by MADV_FREE (folio_mark_lazyfree()): reclaim discards it. */
export const PTE_LAZYFREE = 1 << 10;
/**
 * pte_write() on a page that still has a uffd-wp bit: only a page whose bit went stale (its VMA
 * was not uffd-wp when a write fault reused it) is writable with the bit; writes then no longer
 * fault. Write-protecting it again clears this.
 */
export const PTE_WRITE = 1 << 11;
/**
 * A lazily-freed page written since MADV_FREE: its folio is still !swapbacked but the PTE is
 * dirty, so reclaim makes it swapbacked again and keeps it (shrink_folio_list()).
 */
export const PTE_LAZYFREE_DIRTY = 1 << 12;

export type Pte = number;

export const ptePresent = (pte: Pte): boolean => (pte & KIND_MASK) === PTE_PRESENT;
/** is_swap_pte(): non-present and non-none; pte markers are swap-format entries too. */
export const isSwapPte = (pte: Pte): boolean => (pte & KIND_MASK) > PTE_PRESENT;
export const pteKind = (pte: Pte): number => pte & KIND_MASK;
export const isGuardMarker = (pte: Pte): boolean => pteKind(pte) === PTE_MARKER_GUARD;
export const isUffdWpMarker = (pte: Pte): boolean => pteKind(pte) === PTE_MARKER_UFFD_WP;

/** pte_uffd_wp(): a present entry with the uffd-wp bit. */
export const pteUffdWp = (pte: Pte): boolean => ptePresent(pte) && (pte & PTE_UFFD_WP) !== 0;

/** pte_swp_uffd_wp_any(): a swap-format entry with the uffd-wp bit, or a uffd-wp marker. */
export const pteSwpUffdWpAny = (pte: Pte): boolean =>
  isSwapPte(pte) && ((pte & PTE_UFFD_WP) !== 0 || isUffdWpMarker(pte));

/** Already write-protected, as the PAGEMAP_SCAN fast paths test it. */
export const pteIsWriteProtected = (pte: Pte): boolean => pteUffdWp(pte) || pteSwpUffdWpAny(pte);

// ---- PMD and PUD entries -------------------------------------------------------------------
// A PMD entry is absent (pmd_none), a pointer to a PTE table, or a huge leaf (THP, or a 2 MiB
// hugetlb page). A PUD entry is absent, a pointer to a PMD table, or a 1 GiB hugetlb leaf.
// A P4D entry (folded into the PGD on 4-level paging) is absent or a pointer to a PUD table.

/** The entry points to a lower-level table. */
export const TABLE = 1;
/** A huge leaf; carries PTE_UFFD_WP, PTE_SOFT_DIRTY, PTE_ZERO (huge zero page), PTE_FILE. */
export const HUGE_LEAF = 2;
/** A hugetlb entry that is a marker (PTE_MARKER_UFFD_WP); present hugetlb pages are HUGE_LEAF. */
export const HUGE_MARKER_UFFD_WP = PTE_MARKER_UFFD_WP;

export const isTable = (entry: number | undefined): boolean => entry === TABLE;
export const isHugeLeaf = (entry: number | undefined): boolean =>
  entry !== undefined && (entry & KIND_MASK) === HUGE_LEAF;
