// loadScenarioFile: read a scenario from disk with clear errors for everything that is not a
// readable, reasonably sized UTF-8 text file. Never throws anything but InputError for bad input.

import * as fs from 'node:fs';
import { InputError } from '../errors';
import { LIMITS } from './parse';
import type { Program } from './program';
import { parseScenario } from './scenario';

/** Largest file accepted, in bytes. */
export const MAX_FILE_BYTES = LIMITS.maxChars;

export function loadScenarioFile(path: string): Program {
  return parseScenario(readScenarioText(path), path);
}

/** The text of a scenario file, or an InputError naming the file. */
export function readScenarioText(path: string): string {
  const fail = (detail: string): never => {
    throw new InputError({ file: path }, undefined, detail);
  };
  let bytes: Buffer;
  try {
    const st = fs.statSync(path);
    if (st.isDirectory()) fail('is a directory, not a scenario file');
    if (!st.isFile()) fail('is not a regular file');
    if (st.size > MAX_FILE_BYTES) fail(`too large (${st.size} bytes; the limit is ${MAX_FILE_BYTES})`);
    bytes = readAtMost(path, MAX_FILE_BYTES + 1);
  } catch (e) {
    if (e instanceof InputError) throw e;
    return fail(ioMessage(e));
  }
  if (bytes.length > MAX_FILE_BYTES) fail(`too large (more than ${MAX_FILE_BYTES} bytes)`);
  if (bytes.includes(0)) fail('binary data (a NUL byte); a scenario is YAML text');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('not UTF-8 text; a scenario is YAML text in UTF-8');
  }
}

/**
 * Up to `limit` bytes of a file. A regular file can be longer than its size says (files of /proc
 * and /sys say 0: /proc/self/pagemap would stream hundreds of gigabytes): never read past limit.
 */
function readAtMost(path: string, limit: number): Buffer {
  // O_NONBLOCK: a "regular" file that would wait for data (/proc/kmsg) fails with EAGAIN instead.
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < limit) {
      const chunk = Buffer.alloc(Math.min(1 << 20, limit - total));
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
    }
    return Buffer.concat(chunks, total);
  } finally {
    fs.closeSync(fd);
  }
}

function ioMessage(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'cannot read it: permission denied';
    case 'EISDIR':
      return 'is a directory, not a scenario file';
    case 'ENOTDIR':
      return 'no such file (a part of the path is not a directory)';
    case 'ENAMETOOLONG':
      return 'the file name is too long';
    default:
      return `cannot read it: ${code ?? String((e as Error)?.message ?? e)}`;
  }
}
