// Kernel semantics profiles: one table of the differences between the kernels we model, read
// by the code at the few places where they differ (spec §0 and §13).

export interface KernelProfile {
  name: string;
  /** B1: pagemap_page_category() reports a pte_none entry as PAGE_IS_WRITTEN. */
  noneIsWritten: boolean;
  /** B2: pagemap_scan_pte_hole() adds PAGE_IS_WRITTEN in a VM_UFFD_WP (non-hugetlb) VMA. */
  holeIsWrittenInUffdWp: boolean;
  /** CONFIG_MEM_SOFT_DIRTY */
  softDirty: boolean;
}

export const PROFILES: Record<string, KernelProfile> = {
  '6.18.44': { name: '6.18.44', noneIsWritten: true, holeIsWrittenInUffdWp: true, softDirty: false },
  '6.18.0': { name: '6.18.0', noneIsWritten: false, holeIsWrittenInUffdWp: false, softDirty: false },
};

export const DEFAULT_PROFILE = '6.18.44';

export function profileNamed(name: string): KernelProfile | undefined {
  return Object.prototype.hasOwnProperty.call(PROFILES, name) ? PROFILES[name] : undefined;
}
