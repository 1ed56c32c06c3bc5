// A fault that handle_userfault() delivers to the userfaultfd reader is a result: the thread sleeps
// with a UFFD_EVENT_PAGEFAULT message queued, and the scenario (which has no reader) stops there.
//
// The expected values below come from the kernel's rules, not from the emulator's output:
//   userfault_msg() (fs/userfaultfd.c): arg.pagefault.address = vmf->address, or vmf->real_address
//     with UFFD_FEATURE_EXACT_ADDRESS; flags |= UFFD_PAGEFAULT_FLAG_WRITE (1) for FAULT_FLAG_WRITE,
//     UFFD_PAGEFAULT_FLAG_WP (2) for VM_UFFD_WP, UFFD_PAGEFAULT_FLAG_MINOR (4) for VM_UFFD_MINOR.
//   __handle_mm_fault(): vmf->address = address & PAGE_MASK (also when the fault would map a THP).
//   hugetlb_fault(): vmf->address = address & huge_page_mask(h).
//   handle_userfault(): UFFD_FEATURE_SIGBUS gives VM_FAULT_SIGBUS instead of waiting; a GUP fault
//     (MADV_POPULATE_*) waits too, since the harness's uffd is not UFFD_USER_MODE_ONLY.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseScenario } from '../src/scenario';
import { checkExpectation } from '../src/scenario/expect';
import { stepToJson } from '../src/scenario/json';
import type { Op, StepResult } from '../src/scenario/program';
import { simulate } from '../src/simulate';
import { parseReplayOutput } from '../src/kernel/protocol';
import { compareRuns, differences } from '../src/verify';
import { UFFD_FEATURES } from '../src/uapi';
import { cli } from './support/cli';
import { B, P, mmap, program, read, register, uffdOpen, write } from './support/program';

const MISSING = 1n;
const WP = 2n;
const NO_FEATURES = 0n;
const wp = (addr: bigint, size: bigint): Op => ({ op: 'uffd_writeprotect', addr, size, wp: true });
const madvise = (addr: bigint, size: bigint, advice: 'populate-read' | 'populate-write'): Op => ({ op: 'madvise', addr, size, advice });

/** The last result and how the simulation stopped. */
function blockedAt(ops: Op[]) {
  const sim = simulate(program(ops));
  return { sim, last: sim.results[sim.results.length - 1]! };
}

describe('the UFFD_EVENT_PAGEFAULT message of a blocked fault', () => {
  test('MISSING read of a none page: the page address, no flags', () => {
    const { sim, last } = blockedAt([mmap(B, 16n * P), uffdOpen(NO_FEATURES), register(B, 16n * P, MISSING), read(B + 5n * P + 0x123n, 1n)]);
    expect(last).toEqual({ step: 4, op: 'read', ret: -1n, errno: null, userfault: { address: B + 5n * P, flags: [] } });
    expect(sim.stopped).toMatchObject({ step: 4, notModelled: false, userfault: true });
    expect(sim.stopped!.message).toBe(
      `read blocks in handle_userfault(): userfaultfd message PAGEFAULT address 0x${(B + 5n * P).toString(16)} flags 0, ` +
        'and the scenario has no reader; nothing after it runs',
    );
  });

  test('MISSING write: WRITE', () => {
    const { last } = blockedAt([mmap(B, 16n * P), uffdOpen(NO_FEATURES), register(B, 16n * P, MISSING), write(B + 2n * P, 1n)]);
    expect(last.userfault).toEqual({ address: B + 2n * P, flags: ['WRITE'] });
  });

  test('a write to a page write-protected without WP_ASYNC: WRITE|WP; reads go through', () => {
    const { sim, last } = blockedAt([
      mmap(B, 16n * P),
      write(B, 4n * P),
      uffdOpen(NO_FEATURES),
      register(B, 16n * P, WP),
      wp(B, 16n * P),
      read(B, 4n * P),
      write(B + 3n * P + 0x10n, 1n),
    ]);
    expect(sim.results[5]).toEqual({ step: 6, op: 'read', ret: 0n, errno: null });
    expect(last.userfault).toEqual({ address: B + 3n * P, flags: ['WRITE', 'WP'] });
  });

  test('a touch of many pages blocks at the first that faults into the registration', () => {
    // Pages 0-2 are present (written before the registration): only page 3 faults.
    const { last } = blockedAt([mmap(B, 16n * P), write(B, 3n * P), uffdOpen(NO_FEATURES), register(B, 16n * P, MISSING), read(B, 16n * P)]);
    expect(last.userfault).toEqual({ address: B + 3n * P, flags: [] });
  });

  test('UFFD_FEATURE_EXACT_ADDRESS: the faulting byte itself', () => {
    const exact = BigInt(UFFD_FEATURES.EXACT_ADDRESS);
    const { last } = blockedAt([mmap(B, 16n * P), uffdOpen(exact), register(B, 16n * P, MISSING), write(B + 7n * P + 0x7ffn, 1n)]);
    expect(last.userfault).toEqual({ address: B + 7n * P + 0x7ffn, flags: ['WRITE'] });
    // With a stride inside the page, the first byte touched in the faulting page.
    const strided = blockedAt([mmap(B, 16n * P), write(B, 2n * P), uffdOpen(exact), register(B, 16n * P, MISSING), read(B + 0x10n, 4n * P, 0x300n)]);
    // Touches at 0x10 + k*0x300: the first one at or after 2P (0x2000) is 0x10 + 11*0x300 = 0x2110.
    expect(strided.last.userfault).toEqual({ address: B + 0x2110n, flags: [] });
  });

  test('a THP-eligible block: the page, not the huge page', () => {
    const ops: Op[] = [
      mmap(B, 4n << 20n),
      { op: 'madvise', addr: B, size: 4n << 20n, advice: 'hugepage' },
      uffdOpen(NO_FEATURES),
      register(B, 4n << 20n, MISSING),
      write(B + (2n << 20n) + 5n * P + 1n, 1n),
    ];
    expect(blockedAt(ops).last.userfault).toEqual({ address: B + (2n << 20n) + 5n * P, flags: ['WRITE'] });
  });

  test('hugetlb: the huge page (hugetlb_fault() aligns vmf->address)', () => {
    const ops: Op[] = [
      { op: 'mmap', addr: B, size: 4n << 20n, kind: 'hugetlb', prot: 3 },
      uffdOpen(NO_FEATURES),
      register(B, 4n << 20n, MISSING),
      read(B + (2n << 20n) + 9n * P, 1n),
    ];
    expect(blockedAt(ops).last.userfault).toEqual({ address: B + (2n << 20n), flags: [] });
  });

  test('MADV_POPULATE_READ / _WRITE (GUP) block too, at the first page not present', () => {
    const base: Op[] = [mmap(B, 16n * P), write(B, 2n * P), uffdOpen(NO_FEATURES), register(B, 16n * P, MISSING)];
    const r = blockedAt([...base, madvise(B, 8n * P, 'populate-read')]);
    expect(r.last).toEqual({ step: 5, op: 'madvise', ret: -1n, errno: null, userfault: { address: B + 2n * P, flags: [] } });
    // Pages 0-1 are present and writable: GUP needs no fault there, even for a write.
    expect(blockedAt([...base, madvise(B, 8n * P, 'populate-write')]).last.userfault).toEqual({ address: B + 2n * P, flags: ['WRITE'] });
  });

  test('UFFD_FEATURE_SIGBUS: SIGBUS (or EFAULT for populate), no message', () => {
    const sigbus = BigInt(UFFD_FEATURES.SIGBUS);
    const sim = simulate(
      program([mmap(B, 16n * P), uffdOpen(sigbus), register(B, 16n * P, MISSING), [read(B, 2n * P), 'may_fail'], [madvise(B, 2n * P, 'populate-read'), 'may_fail']]),
    );
    expect(sim.stopped).toBeUndefined();
    expect(sim.results.slice(3).map((r) => [r.errno, r.userfault])).toEqual([
      ['SIGBUS', undefined],
      ['EFAULT', undefined],
    ]);
  });

  test('may_fail does not make the thread return: nothing after the blocked step runs', () => {
    const sim = simulate(program([mmap(B, 16n * P), uffdOpen(NO_FEATURES), register(B, 16n * P, MISSING), [read(B, 1n), 'may_fail'], write(B, 1n)]));
    expect(sim.results.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(sim.stopped?.step).toBe(4);
  });
});

describe('reporting and comparing it', () => {
  const blocked: StepResult = { step: 4, op: 'read', ret: -1n, errno: null, userfault: { address: B + 5n * P, flags: [] } };

  test('run --json: an optional "userfault" object in the step', () => {
    expect(stepToJson(blocked)).toEqual({ step: 4, op: 'read', ret: -1, errno: null, userfault: { address: '0x100000005000', flags: [] } });
    expect(stepToJson({ step: 1, op: 'read', ret: 0n, errno: null })).not.toHaveProperty('userfault');
  });

  test('the harness protocol: the step result with its message, then end stopped/userfault', () => {
    const prog = program([mmap(B, 16n * P), uffdOpen(NO_FEATURES), register(B, 16n * P, MISSING), read(B + 5n * P, 1n), read(B, 1n)]);
    const hello = JSON.stringify({
      harness: { pid: 1, kernel: '6.18.44', machine: 'x86_64', page_size: 4096, vec: 'ok', pagemap_scan: 'ok', userfaultfd: 'ok', uffd_features: '0x1ffff', step_timeout_ms: 5000, step_limit_ms: 60000, maps: [] },
    });
    const lines = [
      hello,
      '{"step":1,"op":"mmap","ret":0,"errno":null}',
      '{"step":2,"op":"uffd_open","ret":0,"errno":null}',
      '{"step":3,"op":"uffd_register","ret":0,"errno":null}',
      '{"step":4,"op":"read","ret":-1,"errno":null,"userfault":{"address":"0x100000005000","flags":[]}}',
      '{"end":"stopped","step":4,"reason":"userfault"}',
    ];
    const run = parseReplayOutput(lines.join('\n') + '\n', prog.steps, { code: 0, signal: null, timedOut: false });
    expect(run.results[3]).toEqual(blocked);
    expect(run.stopped).toEqual({ step: 4, reason: 'userfault' });
    expect(run.unreproduced).toEqual([]);
    expect(run.notReached).toEqual([5]);
    // The emulator stops at the same step with the same message: every step agrees.
    const verdicts = compareRuns(prog, run, simulate(prog));
    expect(verdicts.map((v) => v.status)).toEqual(['agree', 'agree', 'agree', 'agree']);
  });

  test('the message is compared like ret and errno', () => {
    expect(differences(blocked, blocked)).toEqual([]);
    expect(differences(blocked, { ...blocked, userfault: { address: B + 6n * P, flags: [] } })).toEqual(['userfault']);
    expect(differences(blocked, { ...blocked, userfault: { address: B + 5n * P, flags: ['WRITE'] } })).toEqual(['userfault']);
    expect(differences(blocked, { step: 4, op: 'read', ret: 0n, errno: null })).toEqual(['ret', 'userfault']);
  });
});

describe('expect: { userfault: {address, flags} }', () => {
  const text = (expectLine: string) => `name: t
steps:
  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: m}
  - uffd_open: {features: []}
  - uffd_register: {addr: m, size: 16p, mode: [MISSING]}
  - write: {addr: m+5p, size: 1}
    expect: ${expectLine}
`;
  const check = (expectLine: string) => {
    const prog = parseScenario(text(expectLine), 't.yaml');
    const step = prog.steps[3]!;
    return checkExpectation(step, step.expect!, simulate(prog).results[3]);
  };

  test('holds for the kernel\'s message; flags may be left out', () => {
    expect(check('{userfault: {address: m+5p, flags: [WRITE]}}')).toEqual([]);
    expect(check('{userfault: {address: 0x100000005000}}')).toEqual([]);
  });

  test('fails on another address or flags, and ok: true fails on a step that blocks', () => {
    expect(check('{userfault: {address: m+4p, flags: [WRITE]}}').map((m) => m.field)).toEqual(['userfault']);
    expect(check('{userfault: {address: m+5p, flags: [WRITE, WP]}}').map((m) => m.field)).toEqual(['userfault']);
    const ok = check('{ok: true}');
    expect(ok).toEqual([{ field: 'userfault', expected: 'the step returns', got: 'blocks on userfaultfd: PAGEFAULT address 0x100000005000 flags WRITE' }]);
  });

  test('bad input is located (file:line:col: key: why)', () => {
    expect(() => parseScenario(text('{userfault: {address: m+5p, flags: [READ]}}'), 't.yaml')).toThrow(/^t\.yaml:7:\d+: .*userfault\.flags.*READ/);
    expect(() => parseScenario(text('{userfault: {flags: [WRITE]}}'), 't.yaml')).toThrow(/^t\.yaml:7:\d+: .*address/);
    expect(() => parseScenario(text('{userfault: {address: m+5p}, errno: EFAULT}'), 't.yaml')).toThrow(/^t\.yaml:7:\d+: .*cannot be combined/);
    expect(() => parseScenario(text('{userfault: {address: m+5p, when: now}}'), 't.yaml')).toThrow(/^t\.yaml:7:\d+: .*unknown key/);
  });

  test('run exits 0 when the step expects the block, 2 when nothing did; test passes or fails it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-blocked-'));
    const expected = path.join(dir, 'expected.yaml');
    const unplanned = path.join(dir, 'unplanned.yaml');
    fs.writeFileSync(expected, text('{userfault: {address: m+5p, flags: [WRITE]}}'));
    fs.writeFileSync(unplanned, text('{ok: true}'));
    try {
      const a = await cli(['run', expected]);
      expect(a.code).toBe(0);
      expect(a.out).toMatch(/4 write +blocked/);
      expect(a.out).toContain('blocked: userfaultfd PAGEFAULT at m+5p (0x100000005000) flags WRITE');
      expect(a.err).toContain('expected.yaml:6:5: step 4: write blocks in handle_userfault()');
      const b = await cli(['run', '--json', unplanned]);
      expect(b.code).toBe(2);
      const doc = JSON.parse(b.out);
      expect(doc.steps[3]).toEqual({ step: 4, op: 'write', ret: -1, errno: null, userfault: { address: '0x100000005000', flags: ['WRITE'] } });
      expect(doc.stopped.step).toBe(4);
      expect((await cli(['test', expected])).code).toBe(0);
      const t = await cli(['test', unplanned]);
      expect(t.code).toBe(1);
      expect(t.out).toContain('userfault:');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
