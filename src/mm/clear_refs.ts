// Soft-dirty tracking (CONFIG_MEM_SOFT_DIRTY): what a write marks, and what writing 4 to
// /proc/PID/clear_refs clears (clear_refs_write() in fs/proc/task_mmu.c).

import { PMD_SIZE } from '../uapi';
import type { MmStruct } from './mm';
import { hugetlbLevels } from './hugetlb';
import { isHugeLeaf, isSwapPte, ptePresent, PTE_SOFT_DIRTY, pteKind, PTE_SWAP } from './pte';
import { isHugetlb, isPfnmap, type Vma } from './vma';

/** A write fault left [start, end) dirty: pte_mkdirty() sets the soft-dirty bit with it. */
export function markSoftDirty(mm: MmStruct, vma: Vma, start: number, end: number): void {
  if (!mm.profile.softDirty) return;
  if (isHugetlb(vma)) {
    const { entries } = hugetlbLevels(mm, vma);
    entries.map.update(entries.index(start), Math.ceil(end / entries.size), (e) => (isHugeLeaf(e) ? e | PTE_SOFT_DIRTY : e));
    return;
  }
  mm.pmd.map.update(mm.pmd.index(start), Math.ceil(end / PMD_SIZE), (e) => (isHugeLeaf(e) ? e | PTE_SOFT_DIRTY : e));
  mm.pte.map.update(mm.pte.index(start), mm.pte.index(end), (pte) => (ptePresent(pte) ? pte | PTE_SOFT_DIRTY : pte));
}

/**
 * clear_refs 4 (CLEAR_REFS_SOFT_DIRTY): every VMA but PFNMAP ones loses VM_SOFTDIRTY, and every
 * PTE and PMD its soft-dirty bit (swap entries too). There is no hugetlb callback in
 * clear_refs_walk_ops, so hugetlb entries keep theirs.
 */
export function clearSoftDirty(mm: MmStruct): void {
  const clear = (e: number) => e & ~PTE_SOFT_DIRTY;
  for (const vma of mm.vmas) {
    if (isPfnmap(vma)) continue;
    vma.softDirty = false;
    if (isHugetlb(vma)) continue;
    mm.pmd.map.update(mm.pmd.index(vma.start), Math.ceil(vma.end / PMD_SIZE), (e) => (isHugeLeaf(e) ? clear(e) : e));
    mm.pte.map.update(mm.pte.index(vma.start), mm.pte.index(vma.end), (pte) =>
      ptePresent(pte) || (isSwapPte(pte) && pteKind(pte) === PTE_SWAP) ? clear(pte) : pte,
    );
  }
}
