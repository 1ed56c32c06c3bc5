// Kernel semantics profiles: one table of the differences between the kernels we model (spec §0
// and §13), read by the code at the few places where they differ.

export interface KernelProfile {
  name: string;
  /** PM_SCAN_CATEGORIES: the category bits accepted in the masks. */
  categories: number;
  /** 6.9 "fix uffd-wp confusion": before, the fast paths saw write-protected swap entries and markers as written. */
  fastPathSeesSwapWp: boolean;
  /** ≈6.13: size_mul() saturates vec_len * 24 (before it wrapped modulo 2^64). */
  vecLenSaturates: boolean;
  /** 6.12: splitting a THP's folio maps its zero-filled pages to the shared zero page. */
  thpSplitZeroRemap: boolean;
  /** 6.13: a write to the huge zero page maps a new THP (before: split, and copy one page). */
  hugeZeroWriteThp: boolean;
  /** 6.13: MADV_GUARD_INSTALL / MADV_GUARD_REMOVE exist. */
  guardRegions: boolean;
  /** 6.14: CONFIG_PT_RECLAIM frees empty PTE tables on MADV_DONTNEED. */
  ptReclaim: boolean;
  /** 6.15: guard regions in file-backed mappings. */
  guardInFileMappings: boolean;
  /** 6.16: guard markers are reported PAGE_IS_GUARD. */
  guardCategory: boolean;
  /** 6.16: the huge zero page is reported PAGE_IS_PFNZERO. */
  hugeZeroPfnzero: boolean;
  /** B1: pagemap_page_category() reports a pte_none entry as PAGE_IS_WRITTEN. */
  noneIsWritten: boolean;
  /** B2: pagemap_scan_pte_hole() adds PAGE_IS_WRITTEN in a VM_UFFD_WP (non-hugetlb) VMA. */
  holeIsWrittenInUffdWp: boolean;
  /** B3: pagemap_scan_hugetlb_entry() compares with huge_page_size() (else 1 GiB pages never fit). */
  hugetlbWpWholePage: boolean;
  /** B4: WP_MATCHING over a hugetlb hole installs markers (else the calling thread hangs). */
  hugetlbHoleWp: boolean;
  /** CONFIG_MEM_SOFT_DIRTY (not on the machines here: profiles named "+softdirty"). */
  softDirty: boolean;
}

type Differences = Omit<KernelProfile, 'name' | 'softDirty'>;

const V6_7: Differences = {
  categories: 0x7f,
  fastPathSeesSwapWp: false,
  vecLenSaturates: false,
  thpSplitZeroRemap: false,
  hugeZeroWriteThp: false,
  guardRegions: false,
  ptReclaim: false,
  guardInFileMappings: false,
  guardCategory: false,
  hugeZeroPfnzero: false,
  noneIsWritten: false,
  holeIsWrittenInUffdWp: false,
  hugetlbWpWholePage: false,
  hugetlbHoleWp: false,
};
const V6_8: Differences = { ...V6_7, categories: 0xff };
const V6_13: Differences = {
  ...V6_8,
  fastPathSeesSwapWp: true,
  vecLenSaturates: true,
  thpSplitZeroRemap: true,
  hugeZeroWriteThp: true,
  guardRegions: true,
};
const V6_16: Differences = {
  ...V6_13,
  categories: 0x1ff,
  ptReclaim: true,
  guardInFileMappings: true,
  guardCategory: true,
  hugeZeroPfnzero: true,
};
const V6_18_44: Differences = {
  ...V6_16,
  noneIsWritten: true,
  holeIsWrittenInUffdWp: true,
  hugetlbWpWholePage: true,
  hugetlbHoleWp: true,
};

/** The kernels modelled, oldest first; 6.18.0 is 6.18 before the 2026 back-ports B1-B4. */
const BASES: Record<string, Differences> = {
  '6.7': V6_7,
  '6.8': V6_8,
  '6.13': V6_13,
  '6.16': V6_16,
  '6.18.0': V6_16,
  '6.18.44': V6_18_44,
};

const SOFT_DIRTY_SUFFIX = '+softdirty';

export const PROFILES: Record<string, KernelProfile> = Object.fromEntries(
  Object.entries(BASES).flatMap(([name, d]) => [
    [name, { name, ...d, softDirty: false }],
    [name + SOFT_DIRTY_SUFFIX, { name: name + SOFT_DIRTY_SUFFIX, ...d, softDirty: true }],
  ]),
);

/** What the machines here run. */
export const DEFAULT_PROFILE = '6.18.44';

export function profileNamed(name: string): KernelProfile | undefined {
  return Object.prototype.hasOwnProperty.call(PROFILES, name) ? PROFILES[name] : undefined;
}
