// The page-table state of the reference model, in the words of src/mm/dump.ts, so that the two
// can be compared: runs of "hole" (no PTE table), "none", "present", "zero", "marker", "guard",
// "swap", with "|wp" when the uffd-wp bit is set. hugetlb VMAs are not described here (their
// entries are compared through scans; see compare.ts).

import { PAGE_SIZE, PMD_SIZE, addrEnd, type Pte, type RefMm } from './mm';

export interface StateRun {
  start: number;
  end: number;
  state: string;
}

export function describePte(pte: Pte | undefined): string {
  if (pte === undefined) return 'none';
  switch (pte.kind) {
    case 'page':
      return (pte.wp ? 'present|wp' : 'present') + (pte.folio !== undefined ? '|large' : '');
    case 'zero':
      return pte.wp ? 'zero|wp' : 'zero';
    case 'marker':
      return 'marker';
    case 'guard':
      return pte.wp ? 'guard|wp' : 'guard';
    case 'swap':
      return pte.wp ? 'swap|wp' : 'swap';
    case 'file':
      return pte.wp ? 'present|wp|file' : 'present|file';
  }
}

/** The state of every page of [start, end) (page aligned), as maximal runs. */
export function dumpPages(mm: RefMm, start: number, end: number): StateRun[] {
  const out: StateRun[] = [];
  const push = (s: number, e: number, state: string): void => {
    const last = out[out.length - 1];
    if (last && last.end === s && last.state === state) last.end = e;
    else out.push({ start: s, end: e, state });
  };
  for (let addr = start; addr < end; ) {
    const next = addrEnd(addr, end, PMD_SIZE);
    const thp = mm.thpGet(addr);
    if (thp) push(addr, next, (thp.zero ? 'thp|zero' : 'thp') + (thp.wp ? '|wp' : ''));
    else if (!mm.hasPteTable(addr)) push(addr, next, 'hole');
    else for (let a = addr; a < next; a += PAGE_SIZE) push(a, a + PAGE_SIZE, describePte(mm.pteGet(a)));
    addr = next;
  }
  return out;
}
