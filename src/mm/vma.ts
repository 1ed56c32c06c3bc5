// struct vm_area_struct, reduced to what decides PAGEMAP_SCAN results.
// Invariants: start < end, both page aligned (hugetlb: huge-page aligned); VMAs never overlap.

import type { MemoryKind } from '../scenario/program';
import { PROT_WRITE, UFFD_REGISTER_MODES } from '../uapi';
import type { AddressSpace } from './filemap';
import type { HugetlbFile } from './hugetlb';

export type ThpAdvice = 'none' | 'hugepage' | 'nohugepage';

export interface Vma {
  start: number;
  end: number;
  kind: MemoryKind;
  /** PROT_* bits. */
  prot: number;
  /** VM_HUGEPAGE / VM_NOHUGEPAGE */
  thp: ThpAdvice;
  /** VM_RAND_READ, VM_SEQ_READ, VM_DONTCOPY: advice that only sets VMA flags (and so splits VMAs). */
  advice: number;
  /** UFFDIO_REGISTER_MODE_* bits of the registration with the process's userfaultfd; 0: none. */
  uffd: number;
  /** VM_SOFTDIRTY (only in kernel profiles with CONFIG_MEM_SOFT_DIRTY). */
  softDirty: boolean;
  /** VM_ACCOUNT: a private writable mapping charged to the commit limit. */
  account: boolean;
  /** vma->anon_vma, by identity; null until the first anonymous page (anon_vma_prepare()). */
  anonVma: number | null;
  /** vm_file->f_mapping, for file, memfd and shared-anon (shmem) VMAs. */
  mapping?: AddressSpace;
  /** The address at which offset 0 of the file would be mapped: pgoff = (addr - fileBase) / 4096. */
  fileBase?: number;
  /** The hugetlbfs file of a MAP_SHARED hugetlb mapping (its page cache and reservations). */
  hugetlbFile?: HugetlbFile;
}

export const isHugetlb = (vma: Vma): boolean => vma.kind.startsWith('hugetlb');
export const isPfnmap = (vma: Vma): boolean => vma.kind === 'pfnmap';
/** vma_is_anonymous(): private anonymous memory (MAP_SHARED|MAP_ANONYMOUS is shmem). */
export const vmaIsAnonymous = (vma: Vma): boolean => vma.kind === 'anon';
export const hugePageSize = (vma: Vma): number =>
  vma.kind === 'hugetlb-1g' ? 1024 * 1024 * 1024 : 2 * 1024 * 1024;
/** userfaultfd_wp(): VM_UFFD_WP */
export const userfaultfdWp = (vma: Vma): boolean => (vma.uffd & UFFD_REGISTER_MODES.WP) !== 0;

/** vm_flags equality but for `ignoreProt` (VM_ACCESS_FLAGS) and VM_SOFTDIRTY, which never count. */
export function sameVmaFlags(a: Vma, b: Vma, ignoreProt = false): boolean {
  return (
    a.kind === b.kind &&
    (ignoreProt || a.prot === b.prot) &&
    a.thp === b.thp &&
    a.advice === b.advice &&
    a.uffd === b.uffd &&
    a.account === b.account
  );
}

/** Same backing: anonymous, or the same file at the same offsets. */
function sameBacking(a: Vma, b: Vma): boolean {
  return a.kind === 'anon' ? b.kind === 'anon' : a.mapping !== undefined && a.mapping === b.mapping && a.fileBase === b.fileBase;
}

/**
 * is_mergeable_vma() and is_mergeable_anon_vma(): adjacent, equal flags and backing, and anon_vmas
 * that are equal or not yet there. hugetlb and PFNMAP VMAs never merge here.
 */
export function canMerge(prev: Vma, next: Vma): boolean {
  if (prev.end !== next.start || !sameVmaFlags(prev, next) || isHugetlb(prev) || isPfnmap(prev)) return false;
  if (!sameBacking(prev, next)) return false;
  return prev.anonVma === null || next.anonVma === null || prev.anonVma === next.anonVma;
}

/** anon_vma_compatible(): a neighbour whose anon_vma a VMA may share (find_mergeable_anon_vma()). */
export function anonVmaCompatible(a: Vma, b: Vma): boolean {
  return a.end === b.start && sameVmaFlags(a, b, true) && sameBacking(a, b);
}

/** accountable_mapping(): private, writable, not hugetlb. */
export function accountable(vma: Pick<Vma, 'kind' | 'prot'>): boolean {
  const shared = vma.kind === 'shared-anon' || vma.kind.endsWith('-shared') || vma.kind === 'pfnmap';
  return !shared && !vma.kind.startsWith('hugetlb') && (vma.prot & PROT_WRITE) !== 0;
}

export const VM_SEQ_READ = 1 << 0;
export const VM_RAND_READ = 1 << 1;
export const VM_DONTCOPY = 1 << 2;
