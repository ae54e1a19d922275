// What the benchmarks report about the machine they ran on, so that a number can be read with
// what produced it: CPUs, memory, kernel, Node and PostgreSQL versions, load, and the other
// PostgreSQL servers running beside ours.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findPgBin } from '../../src/local-pair/pg-bin.js';
import { listPids, readProcStat } from '../../src/util/procfs.js';

export interface Machine {
  cpus: number;
  cpuModel: string;
  cpuMHz: number;
  memGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  foreignPostgresAtStart: number;
}

/** Live `postgres` processes on the machine (ours and anybody else's). */
export function countPostgresProcesses(): number {
  return listPids().filter((pid) => readProcStat(pid)?.comm === 'postgres').length;
}

/** The 1, 5 and 15 minute load averages, to two decimals. */
export function loadAverage(): number[] {
  return os.loadavg().map((v) => Math.round(v * 100) / 100);
}

/** `foreignPostgres`: postgres processes found before the benchmark started any. */
export function machineInfo(foreignPostgres: number): Machine {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuMHz: cpus[0]?.speed || cpuinfoMHz(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    postgres: postgresVersion(),
    foreignPostgresAtStart: foreignPostgres,
  };
}

/** "15.8 (Debian 15.8-0+deb12u1)", from the binaries the pairs run; 'unknown' without them. */
export function postgresVersion(): string {
  try {
    const bin = findPgBin();
    if (!bin) return 'unknown';
    return execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' })
      .trim()
      .replace(/^postgres \(PostgreSQL\) /, '');
  } catch {
    return 'unknown';
  }
}

/** Some virtual machines report speed 0 to os.cpus(); /proc/cpuinfo usually knows. */
function cpuinfoMHz(): number {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1])) : 0;
  } catch {
    return 0;
  }
}

/** "3.4.23", from the etcd binary the arbiter's benchmark runs; 'unknown' without it. */
export function etcdVersion(bin = '/usr/bin/etcd'): string {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8' });
    return /etcd Version: (\S+)/.exec(out)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
