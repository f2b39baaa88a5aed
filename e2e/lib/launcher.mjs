// Launcher-side helpers for run.mjs: build and start the broker, and kill
// every process the run started.
//
// The CA that signs the broker's server certificate is written only when the
// broker starts, and Node reads NODE_EXTRA_CA_CERTS only at start-up, so the
// tests run in a child process that is started after the broker is healthy.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root (holds go.mod and cmd/broker). */
export const repoRoot = path.resolve(here, '..', '..');

/**
 * Builds cmd/broker into dir and returns the binary's path.
 * @param {string} dir
 * @returns {Promise<string>}
 */
export async function buildBroker(dir) {
  const bin = path.join(dir, 'broker');
  await new Promise((resolve, reject) => {
    execFile('go', ['build', '-o', bin, './cmd/broker'], { cwd: repoRoot, maxBuffer: 16 << 20 }, (err, _out, stderr) => {
      if (err) reject(new Error(`go build ./cmd/broker failed:\n${stderr || err.message}`));
      else resolve();
    });
  });
  return bin;
}

/** Returns a TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Returns the last lines of a file, for error messages. */
export function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function getStatus(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 2000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
  });
}

/**
 * Starts the broker binary with a fresh data directory and a seed users
 * file, and waits until GET /healthz answers 200 over HTTPS trusting only
 * the broker's CA.
 *
 * A watchdog shell waits for its stdin (a pipe from this process) to close
 * and then kills the broker, so even a SIGKILLed launcher leaves no broker.
 *
 * @param {{binary: string, dataDir: string, logFile: string, usersFile: string, timeoutMs?: number}} opts
 */
export async function startBroker({ binary, dataDir, logFile, usersFile, timeoutMs = 60_000 }) {
  const port = await freePort();
  const username = 'e2e';
  const password = randomUUID();
  const url = `https://localhost:${port}`;
  const log = fs.openSync(logFile, 'a');
  const child = spawn(binary, [], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? os.tmpdir(),
      BROKER_DATA_DIR: dataDir,
      BROKER_ADDR: `127.0.0.1:${port}`,
      BROKER_PUBLIC_URL: url,
      BROKER_IDENTITY_URL: `https://127.0.0.1:${port}`,
      BROKER_USERNAME: username,
      BROKER_PASSWORD: password,
      BROKER_ENCRYPTION_KEY: randomUUID() + randomUUID(),
      BROKER_USERS_FILE: usersFile,
    },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  const watchdog = spawn('/bin/sh', ['-c', 'read _ ; kill "$0" 2>/dev/null', String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.unref();
  watchdog.stdin.on('error', () => {});

  const stop = async () => {
    // Disarm the watchdog first so it never signals a reused pid.
    watchdog.kill('SIGKILL');
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exitPromise;
    clearTimeout(timer);
  };

  const caFile = path.join(dataDir, 'ca.pem');
  const deadline = Date.now() + timeoutMs;
  let lastError = 'not started';
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(`broker exited during start-up (${JSON.stringify(exited)}):\n${tail(logFile)}`);
    }
    if (fs.existsSync(caFile)) {
      try {
        const status = await getStatus(`${url}/healthz`, fs.readFileSync(caFile));
        if (status === 200) return { url, username, password, dataDir, caFile, pid: child.pid, stop };
        lastError = `GET /healthz → ${status}`;
      } catch (err) {
        lastError = err.message;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`broker not healthy after ${timeoutMs} ms (${lastError}):\n${tail(logFile)}`);
}

/**
 * The start time of a process (field 22 of /proc/<pid>/stat), or null when
 * it is gone. With the pid it names one process, whatever pids are reused.
 * @param {number} pid
 */
export function processStartTime(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Kills every process registered in the pid file (lines "pid starttime"),
 * with its process group when it leads one, but only while the pid still
 * names the process that was registered.
 * @param {string} pidFile
 */
export function killRegistered(pidFile) {
  let lines = [];
  try { lines = fs.readFileSync(pidFile, 'utf8').split('\n').filter(Boolean); } catch { return; }
  for (const line of lines) {
    const [pidText, start] = line.split(' ');
    const pid = Number(pidText);
    if (!pid || processStartTime(pid) !== start) continue;
    for (const target of [-pid, pid]) {
      try { process.kill(target, 'SIGKILL'); } catch { /* not a group leader, or gone */ }
    }
  }
}
