#!/usr/bin/env node
// Launcher for the compatibility suite (`npm test`).
//
// Builds and starts the broker, then runs `node --test` on test/*.test.mjs in
// a child process whose NODE_EXTRA_CA_CERTS names the broker's CA: Node reads
// that variable only at start-up and the CA file exists only once the broker
// has started. The broker is stopped on every way out of this process.
//
// Extra arguments are passed to `node --test`, e.g.
//   npm test -- --test-name-pattern=x509
// Files can be narrowed with COMPAT_TESTS=x509,negative (name prefixes);
// COMPAT_BROKER_BINARY=<path> skips the build and runs that binary;
// COMPAT_KEEP=1 keeps the temporary directory (broker data and log).
// The broker starts with BROKER_USERS_FILE = a seed file of the users in
// test/harness.mjs (seedUsers) written into the temporary directory.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildBroker, startBroker, tail, writeUsersFile } from './test/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// A hard limit for the whole run, so a hanging broker or test cannot block CI.
const overallTimeoutMs = Number(process.env.COMPAT_TIMEOUT_MS ?? 15 * 60_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'broker-compat-'));
const logFile = path.join(tmp, 'broker.log');
let running; // the started broker
let testChild;
let finishing = false;

async function finish(code, message) {
  if (finishing) return;
  finishing = true;
  if (message) console.error(message);
  if (testChild && testChild.exitCode === null) testChild.kill('SIGTERM');
  try {
    if (running) await running.stop();
  } catch (err) {
    console.error(`stopping the broker: ${err.message}`);
  }
  if (code !== 0) {
    console.error(`\nbroker log, last lines:\n${tail(logFile, 60)}`);
  }
  if (process.env.COMPAT_KEEP) {
    console.error(`compat: kept ${tmp}`);
  } else {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => finish(130, `compat: received ${sig}`));
}
process.on('uncaughtException', (err) => finish(1, `compat: ${err.stack ?? err}`));
process.on('unhandledRejection', (err) => finish(1, `compat: ${err?.stack ?? err}`));
setTimeout(() => finish(1, `compat: timed out after ${overallTimeoutMs} ms`), overallTimeoutMs).unref();

/** The extra-CA bundle: the broker CA, plus any bundle already configured. */
function caBundle(caFile) {
  const existing = process.env.NODE_EXTRA_CA_CERTS;
  if (!existing) return caFile;
  // NODE_EXTRA_CA_CERTS names one file; keep what the environment trusted
  // already (sap-clients.md §1) and add the broker CA to a copy.
  const bundle = path.join(tmp, 'extra-ca.pem');
  let prior = '';
  try { prior = fs.readFileSync(existing, 'utf8'); } catch { /* unreadable: ignore */ }
  fs.writeFileSync(bundle, `${prior.trimEnd()}\n${fs.readFileSync(caFile, 'utf8')}`);
  return bundle;
}

function testFiles() {
  const dir = path.join(here, 'test');
  const only = (process.env.COMPAT_TESTS ?? '').split(',').filter(Boolean);
  return fs.readdirSync(dir)
    .filter((f) => f.endsWith('.test.mjs'))
    .filter((f) => only.length === 0 || only.some((p) => f.startsWith(p)))
    .sort()
    .map((f) => path.join('test', f));
}

async function main() {
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  // COMPAT_BROKER_BINARY runs a prebuilt broker instead of building one.
  let binary = process.env.COMPAT_BROKER_BINARY;
  if (!binary) {
    console.log('compat: building the broker …');
    binary = await buildBroker(tmp);
  }
  // alice, bob, … (harness.mjs seedUsers), applied by the broker at start.
  const usersFile = writeUsersFile(tmp);
  running = await startBroker({ binary, dataDir, logFile, usersFile });
  console.log(`compat: broker ${running.url} (pid ${running.pid}, data ${dataDir})`);

  const files = testFiles();
  if (files.length === 0) throw new Error('no test files selected');
  const childEnv = { ...process.env };
  delete childEnv.NODE_TLS_REJECT_UNAUTHORIZED; // the CA must really be trusted
  for (const k of ['VCAP_SERVICES', 'VCAP_SERVICES_FILE_PATH', 'SERVICE_BINDING_ROOT']) delete childEnv[k];
  Object.assign(childEnv, {
    NODE_EXTRA_CA_CERTS: caBundle(running.caFile),
    COMPAT_BROKER_URL: running.url,
    COMPAT_BROKER_IDENTITY_URL: running.identityUrl,
    COMPAT_BROKER_USERNAME: running.username,
    COMPAT_BROKER_PASSWORD: running.password,
    COMPAT_BROKER_DATA_DIR: running.dataDir,
  });
  const args = process.argv.slice(2);
  testChild = spawn(process.execPath, [
    '--test',
    '--test-concurrency=1',
    '--test-timeout=120000',
    ...(args.some((a) => a.startsWith('--test-reporter')) ? [] : ['--test-reporter=spec']),
    ...args,
    ...files,
  ], { cwd: here, env: childEnv, stdio: 'inherit' });
  const code = await new Promise((resolve) => {
    testChild.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    testChild.on('error', (err) => resolve(finish(1, `compat: ${err.message}`)));
  });
  await finish(code);
}

main().catch((err) => finish(1, `compat: ${err.stack ?? err}`));
