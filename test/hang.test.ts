// A step the kernel never returns from because it loops (or deadlocks) is a result: `hang: {why,
// address}`, and the scenario stops there, since the thread never comes back.
//
// The expected values below come from the kernel's rules, not from the emulator's output:
//   hugetlb_no_page(): a uffd-wp marker gives the new page the uffd-wp bit whatever the VMA's
//     registration ("keep it wr-protected even if populated"); hugetlb_fault() resolves a uffd-wp
//     bit only while userfaultfd_wp(vma); hugetlb_wp() returns 0 at once for a uffd-wp pte ("never
//     handle CoW for uffd-wp protected pages"): a write faults again for ever (fault-loop), at the
//     byte it touches; GUP (MADV_POPULATE_WRITE) retries inside the call, with no address.
//   madvise_guard_install(): walks the range, zaps it when it finds anything but none/guard
//     entries, walks again; the zap of a file/shmem VMA keeps uffd-wp markers (zap_pte_range()
//     without ZAP_FLAG_DROP_MARKER), so it restarts for ever (restart-loop; spec Q21). An anonymous
//     VMA's zap drops them: guard-install succeeds there.
//   6.18.0 (before B4): pagemap_scan_pte_hole() -> uffd_wp_range() -> hugetlb_change_protection()
//     waits for hugetlb_vma_lock_write() while walk_hugetlb_range() holds it for read (deadlock).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseScenario } from '../src/scenario';
import { checkExpectation } from '../src/scenario/expect';
import { stepToJson } from '../src/scenario/json';
import type { StepResult } from '../src/scenario/program';
import { simulate } from '../src/simulate';
import { parseReplayOutput } from '../src/kernel/protocol';
import { compareRuns, differences } from '../src/verify';
import { cli } from './support/cli';

const H = 0x100000400000n;

const stale = (last: string, extra = '') => `name: stale
steps:
  - mmap: {addr: 0x100000400000, size: 2M, kind: hugetlb, name: h}
  - uffd_open: {features: [WP_ASYNC]}
  - uffd_register: {addr: h, size: 2M, mode: [WP]}
  - write: {addr: h, size: 1}
  - uffd_writeprotect: {addr: h, size: 2M, wp: true}
  - uffd_register: {addr: h, size: 2M, mode: [MISSING]}
  - ${last}
${extra}  - pagemap_scan: {start: h, end: h+2M, return_mask: 0x1ff}
`;

const guard = (kind: string, last = '- madvise: {addr: m+3p, size: 1p, advice: guard-install}', extra = '') => `name: guard
steps:
  - mmap: {addr: 0x100000000000, size: 16p, kind: ${kind}, name: m}
  - uffd_open: {features: [WP_ASYNC, WP_UNPOPULATED]}
  - uffd_register: {addr: m, size: 16p, mode: [WP]}
  - pagemap_scan: {start: m, end: m+16p, flags: [WP_MATCHING], vec_len: 0}
  ${last}
${extra}  - pagemap_scan: {start: m, end: m+16p, return_mask: 0x1ff}
`;

const sim = (text: string) => simulate(parseScenario(text, 't.yaml'));

describe('fault-loop: a write to a hugetlb page whose uffd-wp bit outlived WP registration', () => {
  test('the write never returns, at the byte written; nothing after it runs', () => {
    const r = sim(stale('write: {addr: h+0x123, size: 1}'));
    expect(r.results).toHaveLength(7);
    expect(r.results[6]).toEqual({ step: 7, op: 'write', ret: -1n, errno: null, hang: { why: 'fault-loop', address: H + 0x123n } });
    expect(r.stopped).toMatchObject({ step: 7, notModelled: false, hang: true });
    expect(r.stopped!.message).toMatch(/^write never returns \(fault-loop at 0x100000400123\): the kernel takes the same fault again for ever/);
  });

  test('a read goes through (no write fault); a write while still WP-registered is resolved (async)', () => {
    expect(sim(stale('read: {addr: h, size: 1}')).stopped).toBeUndefined();
    const still = stale('write: {addr: h, size: 1}').replace('mode: [MISSING]', 'mode: [WP]');
    expect(sim(still).stopped).toBeUndefined();
  });

  test('a stale marker (never populated) faults in with the bit, then the write loops', () => {
    // Write-protect the empty huge page (a marker), re-register MISSING only (the marker stays),
    // close the uffd (release clears WP state only of uffd-wp VMAs), then read and write it.
    const text = `name: marker
steps:
  - mmap: {addr: 0x100000400000, size: 2M, kind: hugetlb, name: h}
  - uffd_open: {features: [WP_ASYNC, WP_UNPOPULATED]}
  - uffd_register: {addr: h, size: 2M, mode: [WP]}
  - uffd_writeprotect: {addr: h, size: 2M, wp: true}
  - uffd_register: {addr: h, size: 2M, mode: [MISSING]}
  - uffd_close: {}
  - read: {addr: h, size: 1}
  - pagemap_scan: {start: h, end: h+2M, return_mask: 0x1ff}
  - write: {addr: h+8, size: 1}
`;
    const r = sim(text);
    // hugetlb_no_page() kept the marker's bit: PRESENT|HUGE, not WRITTEN.
    expect(r.results[7]!.regions).toEqual([{ start: H, end: H + 0x200000n, categories: 0x8 | 0x40 }]);
    expect(r.results[8]!.hang).toEqual({ why: 'fault-loop', address: H + 8n });
  });

  test('MADV_POPULATE_WRITE loops in GUP: a fault-loop without an address', () => {
    const r = sim(stale('madvise: {addr: h, size: 2M, advice: populate-write}'));
    expect(r.results[6]).toEqual({ step: 7, op: 'madvise', ret: -1n, errno: null, hang: { why: 'fault-loop' } });
  });
});

describe('restart-loop: MADV_GUARD_INSTALL over uffd-wp markers (Q21)', () => {
  test('shmem: the madvise never returns', () => {
    const r = sim(guard('memfd-shared'));
    expect(r.results[4]).toEqual({ step: 5, op: 'madvise', ret: -1n, errno: null, hang: { why: 'restart-loop' } });
    expect(r.stopped).toMatchObject({ step: 5, hang: true });
    expect(r.results).toHaveLength(5);
  });

  test('anonymous memory: the zap drops the markers, guard markers are installed', () => {
    const r = sim(guard('anon'));
    expect(r.stopped).toBeUndefined();
    expect(r.results[5]!.regions![1]).toEqual({ start: 0x100000003000n, end: 0x100000004000n, categories: 0x1 | 0x2 | 0x10 | 0x100 }); // WPALLOWED|WRITTEN|SWAPPED|GUARD
  });

  test('shmem without markers in the range: no loop', () => {
    const noMarkers = guard('memfd-shared').replace('  - pagemap_scan: {start: m, end: m+16p, flags: [WP_MATCHING], vec_len: 0}\n', '');
    expect(sim(noMarkers).stopped).toBeUndefined();
  });
});

describe('deadlock: WP_MATCHING over a hugetlb hole before B4 (profile 6.18.0, from the source)', () => {
  const text = (kernel: string) => `name: b4
kernel: ${kernel}
steps:
  - mmap: {addr: 0x100000400000, size: 2M, kind: hugetlb, name: h}
  - uffd_open: {features: [WP_ASYNC, WP_UNPOPULATED]}
  - uffd_register: {addr: h, size: 2M, mode: [WP]}
  - pagemap_scan: {start: h, end: h+2M, flags: [WP_MATCHING], return_mask: 0x1ff}
  - pagemap_scan: {start: h, end: h+2M, return_mask: 0x1ff}
`;
  test('6.18.0: the scan never returns; 6.18.44 installs a marker', () => {
    const old = sim(text('6.18.0'));
    expect(old.results[3]).toMatchObject({ step: 4, op: 'pagemap_scan', ret: -1n, errno: null, hang: { why: 'deadlock' } });
    expect(old.stopped).toMatchObject({ step: 4, notModelled: false, hang: true });
    expect(sim(text('6.18.44')).stopped).toBeUndefined();
  });
});

describe('reporting and comparing it', () => {
  const hung: StepResult = { step: 7, op: 'write', ret: -1n, errno: null, hang: { why: 'fault-loop', address: H + 0x123n } };

  test('run --json: an optional "hang" object in the step (address only when there is one)', () => {
    expect(stepToJson(hung)).toEqual({ step: 7, op: 'write', ret: -1, errno: null, hang: { why: 'fault-loop', address: '0x100000400123' } });
    expect(stepToJson({ step: 5, op: 'madvise', ret: -1n, errno: null, hang: { why: 'restart-loop' } }).hang).toEqual({ why: 'restart-loop' });
    expect(stepToJson({ step: 1, op: 'read', ret: 0n, errno: null })).not.toHaveProperty('hang');
  });

  test('the harness protocol: a "hang" object is a result (end stopped/livelock); a string is not reproducible', () => {
    const prog = parseScenario(guard('memfd-shared'), 't.yaml');
    const hello = JSON.stringify({
      harness: { pid: 1, kernel: '6.18.44', machine: 'x86_64', page_size: 4096, vec: 'ok', pagemap_scan: 'ok', userfaultfd: 'ok', uffd_features: '0x1ffff', step_timeout_ms: 5000, step_limit_ms: 60000, maps: [] },
    });
    const head = [
      hello,
      '{"step":1,"op":"mmap","ret":0,"errno":null}',
      '{"step":2,"op":"uffd_open","ret":0,"errno":null}',
      '{"step":3,"op":"uffd_register","ret":0,"errno":null}',
      '{"step":4,"op":"pagemap_scan","ret":0,"errno":null,"walk_end":"0x100000010000","regions":[]}',
    ];
    const loop = [
      ...head,
      '{"step":5,"op":"madvise","ret":-1,"errno":null,"hang":{"why":"restart-loop","evidence":"in the call for 2010 ms, 2003 ms of CPU, no fault"}}',
      '{"end":"stopped","step":5,"reason":"livelock"}',
    ];
    const run = parseReplayOutput(loop.join('\n') + '\n', prog.steps, { code: 0, signal: null, timedOut: false });
    expect(run.results[4]).toEqual({ step: 5, op: 'madvise', ret: -1n, errno: null, hang: { why: 'restart-loop' } });
    expect(run.stopped).toEqual({ step: 5, reason: 'livelock' });
    expect(run.unreproduced).toEqual([]);
    expect(run.notReached).toEqual([6]);
    expect(compareRuns(prog, run, simulate(prog)).map((v) => v.status)).toEqual(['agree', 'agree', 'agree', 'agree', 'agree']);

    const busy = [...head, '{"step":5,"op":"madvise","ret":-1,"errno":null,"hang":"busy","timeout_ms":60000}', '{"end":"stopped","step":5,"reason":"hang"}'];
    const old = parseReplayOutput(busy.join('\n') + '\n', prog.steps, { code: 0, signal: null, timedOut: false });
    expect(old.results).toHaveLength(4);
    expect(old.unreproduced).toEqual([expect.objectContaining({ step: 5, reason: 'hang' })]);
  });

  test('why and address are compared like ret and errno', () => {
    expect(differences(hung, hung)).toEqual([]);
    expect(differences(hung, { ...hung, hang: { why: 'fault-loop', address: H } })).toEqual(['hang']);
    expect(differences(hung, { ...hung, hang: { why: 'restart-loop' } })).toEqual(['hang']);
    expect(differences(hung, { step: 7, op: 'write', ret: 0n, errno: null })).toEqual(['ret', 'hang']);
  });
});

describe('expect: { hang: {why, address} }', () => {
  const check = (expectLine: string) => {
    const prog = parseScenario(stale('write: {addr: h+0x123, size: 1}\n    expect: ' + expectLine), 't.yaml');
    const step = prog.steps[6]!;
    return checkExpectation(step, step.expect!, simulate(prog).results[6]);
  };

  test('holds for the kernel\'s loop; the address may be left out', () => {
    expect(check('{hang: {why: fault-loop, address: h+0x123}}')).toEqual([]);
    expect(check('{hang: {why: fault-loop}}')).toEqual([]);
  });

  test('fails on another why or address, and ok: true fails on a step that hangs', () => {
    expect(check('{hang: {why: restart-loop}}').map((m) => m.field)).toEqual(['hang']);
    expect(check('{hang: {why: fault-loop, address: h}}').map((m) => m.field)).toEqual(['hang']);
    expect(check('{ok: true}')).toEqual([{ field: 'hang', expected: 'the step returns', got: 'never returns: fault-loop at 0x100000400123' }]);
  });

  test('bad input is located (file:line:col: key: why)', () => {
    const parse = (e: string) => () => parseScenario(stale('write: {addr: h, size: 1}\n    expect: ' + e), 't.yaml');
    expect(parse('{hang: {why: spin}}')).toThrow(/^t\.yaml:10:\d+: .*hang\.why.*fault-loop, restart-loop, deadlock/);
    expect(parse('{hang: {why: fault-loop}, errno: EFAULT}')).toThrow(/^t\.yaml:10:\d+: .*cannot be combined/);
    expect(parse('{hang: {why: fault-loop}, userfault: {address: h}}')).toThrow(/^t\.yaml:10:\d+: .*not both/);
    expect(parse('{hang: {address: h}}')).toThrow(/^t\.yaml:10:\d+: .*why/);
  });

  test('run exits 0 when the step expects the hang, 2 when nothing did; test passes or fails it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hang-'));
    const expected = path.join(dir, 'expected.yaml');
    const unplanned = path.join(dir, 'unplanned.yaml');
    fs.writeFileSync(expected, guard('memfd-shared', '- madvise: {addr: m+3p, size: 1p, advice: guard-install}\n    expect: {hang: {why: restart-loop}}'));
    fs.writeFileSync(unplanned, guard('memfd-shared', '- madvise: {addr: m+3p, size: 1p, advice: guard-install}\n    expect: {ok: true}'));
    try {
      const a = await cli(['run', expected]);
      expect(a.code).toBe(0);
      expect(a.out).toMatch(/5 madvise +hangs/);
      expect(a.out).toContain('hang: the kernel restarts the system call for ever (restart-loop); the thread never returns');
      expect(a.err).toContain('step 5: madvise never returns (restart-loop)');
      const b = await cli(['run', '--json', unplanned]);
      expect(b.code).toBe(2);
      const doc = JSON.parse(b.out);
      expect(doc.steps[4]).toEqual({ step: 5, op: 'madvise', ret: -1, errno: null, hang: { why: 'restart-loop' } });
      expect(doc.stopped.step).toBe(5);
      expect((await cli(['test', expected])).code).toBe(0);
      const t = await cli(['test', unplanned]);
      expect(t.code).toBe(1);
      expect(t.out).toContain('hang:');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const describeKernel = process.platform === 'linux' ? describe : describe.skip;

describeKernel('the kernel harness recognises the loop (Linux 6.18.44)', () => {
  test('MADV_GUARD_INSTALL over shmem markers: restart-loop, long before the step limit', async () => {
    const { runOnKernel } = await import('../src/kernel');
    const prog = parseScenario(guard('memfd-shared'), 't.yaml');
    const t0 = Date.now();
    const run = await runOnKernel(prog, { stepLimitMs: 30_000 });
    expect(run.results[4]).toEqual({ step: 5, op: 'madvise', ret: -1n, errno: null, hang: { why: 'restart-loop' } });
    expect(run.stopped).toEqual({ step: 5, reason: 'livelock' });
    expect(Date.now() - t0).toBeLessThan(20_000);
  }, 60_000);
});
