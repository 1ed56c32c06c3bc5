// Kernel semantics profiles: one table of the differences between the kernels we model, read
// by the code at the few places where they differ (spec §0 and §13).

export interface KernelProfile {
  name: string;
  /** B1: pagemap_page_category() reports a pte_none entry as PAGE_IS_WRITTEN. */
  noneIsWritten: boolean;
  /** B2: pagemap_scan_pte_hole() adds PAGE_IS_WRITTEN in a VM_UFFD_WP (non-hugetlb) VMA. */
  holeIsWrittenInUffdWp: boolean;
  /** B3: pagemap_scan_hugetlb_entry() compares with huge_page_size() (else HPAGE_SIZE: 1 GiB pages never fit). */
  hugetlbWpWholePage: boolean;
  /** B4: WP_MATCHING over a hugetlb hole installs markers (else the calling thread hangs). */
  hugetlbHoleWp: boolean;
  /** CONFIG_MEM_SOFT_DIRTY */
  softDirty: boolean;
}

export const PROFILES: Record<string, KernelProfile> = {
  '6.18.44': {
    name: '6.18.44',
    noneIsWritten: true,
    holeIsWrittenInUffdWp: true,
    hugetlbWpWholePage: true,
    hugetlbHoleWp: true,
    softDirty: false,
  },
  '6.18.0': {
    name: '6.18.0',
    noneIsWritten: false,
    holeIsWrittenInUffdWp: false,
    hugetlbWpWholePage: false,
    hugetlbHoleWp: false,
    softDirty: false,
  },
};

export const DEFAULT_PROFILE = '6.18.44';

export function profileNamed(name: string): KernelProfile | undefined {
  return Object.prototype.hasOwnProperty.call(PROFILES, name) ? PROFILES[name] : undefined;
}
