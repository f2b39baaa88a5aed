#!/usr/bin/env node
// Launcher for the end-to-end suite (`npm test`).
//
// Builds and starts the broker with a fresh data directory and the seed
// users of fixtures/users.yaml, then runs `node --test` on test/*.test.mjs
// in a child process whose NODE_EXTRA_CA_CERTS holds the broker's CA (Node
// reads it only at start-up, and the CA exists only once the broker runs).
//
// Every process the run starts is ended on every way out (success, failure,
// signals, uncaught errors, the overall time limit): the test runner runs in
// its own process group, which is killed as a whole; approuter, cds and
// Chromium are registered in a pid file and killed too; watchdogs kill the
// broker and the test runner's group even if this launcher is SIGKILLed.
//
// Extra arguments go to `node --test` (e.g. --test-name-pattern=refresh).
// E2E_TESTS=login,cap narrows the files (name prefixes); E2E_BROKER_BINARY
// runs a prebuilt broker; E2E_KEEP=1 keeps the temporary directory.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildBroker, killRegistered, startBroker, tail } from './lib/launcher.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const overallTimeoutMs = Number(process.env.E2E_TIMEOUT_MS ?? 8 * 60_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'broker-e2e-'));
const logFile = path.join(tmp, 'broker.log');
const pidFile = path.join(tmp, 'pids');
fs.writeFileSync(pidFile, '');
let broker;
let testChild;
let finishing = false;

let testWatchdog;

function killTestGroup() {
  testWatchdog?.kill('SIGKILL'); // disarm first: it must never signal a reused group id
  if (!testChild?.pid) return;
  try { process.kill(-testChild.pid, 'SIGKILL'); } catch { /* already gone */ }
}

async function finish(code, message) {
  if (finishing) return;
  finishing = true;
  if (message) console.error(message);
  killTestGroup();
  killRegistered(pidFile);
  try {
    if (broker) await broker.stop();
  } catch (err) {
    console.error(`stopping the broker: ${err.message}`);
  }
  if (code !== 0) {
    console.error(`\nbroker log, last lines:\n${tail(logFile, 60)}`);
    for (const f of fs.readdirSync(tmp).filter((n) => n.endsWith('.log') && n !== 'broker.log')) {
      console.error(`\n${f}, last lines:\n${tail(path.join(tmp, f), 40)}`);
    }
  }
  if (process.env.E2E_KEEP) console.error(`e2e: kept ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => finish(130, `e2e: received ${sig}`));
}
process.on('uncaughtException', (err) => finish(1, `e2e: ${err.stack ?? err}`));
process.on('unhandledRejection', (err) => finish(1, `e2e: ${err?.stack ?? err}`));
setTimeout(() => finish(1, `e2e: timed out after ${overallTimeoutMs} ms`), overallTimeoutMs).unref();

/** The extra-CA bundle: the broker CA plus any bundle the environment already names. */
function caBundle(caFile) {
  const existing = process.env.NODE_EXTRA_CA_CERTS;
  if (!existing) return caFile;
  // NODE_EXTRA_CA_CERTS names one file; keep what it trusted already
  // (sap-clients.md §1) and add the broker CA to a copy.
  let prior = '';
  try { prior = fs.readFileSync(existing, 'utf8'); } catch { /* unreadable: ignore */ }
  const bundle = path.join(tmp, 'extra-ca.pem');
  fs.writeFileSync(bundle, `${prior.trimEnd()}\n${fs.readFileSync(caFile, 'utf8')}`);
  return bundle;
}

function testFiles() {
  const dir = path.join(here, 'test');
  const only = (process.env.E2E_TESTS ?? '').split(',').filter(Boolean);
  return fs.readdirSync(dir)
    .filter((f) => f.endsWith('.test.mjs'))
    .filter((f) => only.length === 0 || only.some((p) => f.startsWith(p)))
    .sort()
    .map((f) => path.join('test', f));
}

async function main() {
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  let binary = process.env.E2E_BROKER_BINARY;
  if (!binary) {
    console.log('e2e: building the broker …');
    binary = await buildBroker(tmp);
  }
  broker = await startBroker({ binary, dataDir, logFile, usersFile: path.join(here, 'fixtures', 'users.yaml') });
  console.log(`e2e: broker ${broker.url} (pid ${broker.pid}, data ${dataDir})`);

  const files = testFiles();
  if (files.length === 0) throw new Error('no test files selected');
  fs.mkdirSync(path.join(here, 'artifacts'), { recursive: true });
  const childEnv = { ...process.env };
  delete childEnv.NODE_TLS_REJECT_UNAUTHORIZED; // the CA must really be trusted
  for (const k of ['VCAP_SERVICES', 'VCAP_SERVICES_FILE_PATH', 'SERVICE_BINDING_ROOT', 'VCAP_APPLICATION', 'NODE_OPTIONS']) {
    delete childEnv[k];
  }
  Object.assign(childEnv, {
    NODE_EXTRA_CA_CERTS: caBundle(broker.caFile),
    E2E_BROKER_URL: broker.url,
    E2E_BROKER_USERNAME: broker.username,
    E2E_BROKER_PASSWORD: broker.password,
    E2E_BROKER_CA: broker.caFile,
    E2E_TMP: tmp,
    E2E_PID_FILE: pidFile,
  });
  const args = process.argv.slice(2);
  testChild = spawn(process.execPath, [
    '--test',
    '--test-concurrency=2',
    '--test-timeout=120000',
    ...(args.some((a) => a.startsWith('--test-reporter')) ? [] : ['--test-reporter=spec']),
    ...args,
    ...files,
  ], { cwd: here, env: childEnv, stdio: 'inherit', detached: true });
  // If this launcher is SIGKILLed, the pipe to the watchdog closes and it
  // kills the test runner's process group (approuter and cds are in it;
  // Chromium exits when Playwright's pipe to it closes).
  testWatchdog = spawn('/bin/sh', ['-c', 'read _ ; kill -9 -"$0" 2>/dev/null', String(testChild.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  testWatchdog.unref();
  testWatchdog.stdin.on('error', () => {});
  const code = await new Promise((resolve) => {
    testChild.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    testChild.on('error', (err) => resolve(finish(1, `e2e: ${err.message}`)));
  });
  await finish(code);
}

main().catch((err) => finish(1, `e2e: ${err.stack ?? err}`));
