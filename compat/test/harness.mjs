// Test harness for the compatibility suite.
//
// Two halves:
//   - the launcher side (buildBroker, startBroker) is used by ../run.mjs: it
//     builds cmd/broker, starts it on a free port with a fresh data dir and
//     waits for /healthz. The CA that signs the broker's server certificate is
//     only written at start-up, and Node reads NODE_EXTRA_CA_CERTS only when
//     it starts, so the tests run in a child process started after the broker;
//   - the test side (everything else) reads the running broker's address from
//     the environment that run.mjs passes on, and offers OSB helpers that clean
//     up after themselves.
//
// Only the OSB calls and a few raw token requests go through this file; every
// token fetch and validation under test is done by the unmodified libraries.

import { spawn, execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root (holds go.mod and cmd/broker). */
export const repoRoot = path.resolve(here, '..', '..');

// ---------------------------------------------------------------------------
// Launcher side
// ---------------------------------------------------------------------------

/**
 * Builds cmd/broker into dir and returns the binary's path.
 * @param {string} dir
 * @returns {Promise<string>}
 */
export async function buildBroker(dir) {
  const bin = path.join(dir, 'broker');
  await new Promise((resolve, reject) => {
    execFile('go', ['build', '-o', bin, './cmd/broker'], { cwd: repoRoot, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`go build ./cmd/broker failed:\n${stderr || err.message}`));
        return;
      }
      resolve();
    });
  });
  return bin;
}

/**
 * The users of the broker's zone (BROKER_USERS_FILE). Role collections are
 * resolved when a token is issued, so they may name collections that the
 * tests' instances declare later in their xs-security.json:
 *   - "UT Viewer", "UT Partner": user-tokens.test.mjs;
 *   - "SDK User Viewer": cloud-sdk.test.mjs.
 * Identity tests use the same users (identity tokens carry no scopes).
 */
export const seedUsers = {
  alice: {
    username: 'alice',
    password: 'alice-Pa55word!',
    email: 'alice@example.com',
    given_name: 'Alice',
    family_name: 'Doe',
    role_collections: ['UT Viewer', 'UT Partner', 'SDK User Viewer'],
    attributes: { Country: ['DE'] },
  },
  bob: {
    username: 'bob',
    password: 'bob-Pa55word!',
    email: 'bob@example.com',
    given_name: 'Bob',
    family_name: 'Roe',
    role_collections: [],
  },
};

/**
 * Writes seedUsers as the broker's users seed file into dir and returns its
 * path. JSON is YAML, so no YAML library is needed.
 * @param {string} dir
 * @returns {string}
 */
export function writeUsersFile(dir) {
  const file = path.join(dir, 'users.yaml');
  fs.writeFileSync(file, `${JSON.stringify({ users: Object.values(seedUsers) }, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** Returns a TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort() {
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

/**
 * Starts the broker binary with a fresh data directory and waits until
 * GET /healthz answers 200 over HTTPS (trusting only the broker's CA).
 *
 * The broker is also tied to the launcher by a watchdog: a shell that waits
 * for its stdin (a pipe from this process) to close and then kills the
 * broker, so even a SIGKILLed launcher does not leave a broker behind.
 *
 * usersFile, if given, is passed as BROKER_USERS_FILE (the seed file the
 * broker applies at start, see writeUsersFile).
 *
 * @param {{binary: string, dataDir: string, logFile: string, usersFile?: string, timeoutMs?: number}} opts
 * @returns {Promise<{url: string, identityUrl: string, username: string, password: string, dataDir: string, caFile: string, pid: number, stop: () => Promise<void>}>}
 */
export async function startBroker({ binary, dataDir, logFile, usersFile, timeoutMs = 60_000 }) {
  const port = await freePort();
  const username = 'compat';
  const password = randomUUID();
  const url = `https://localhost:${port}`;
  // The identity host shares the listener; the broker tells the two apart
  // by the Host header (identity.md §7: domains must carry the port).
  const identityUrl = `https://127.0.0.1:${port}`;
  const log = fs.openSync(logFile, 'a');
  const child = spawn(binary, [], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? os.tmpdir(),
      BROKER_DATA_DIR: dataDir,
      BROKER_ADDR: `127.0.0.1:${port}`,
      BROKER_PUBLIC_URL: url,
      BROKER_IDENTITY_URL: identityUrl,
      BROKER_USERNAME: username,
      BROKER_PASSWORD: password,
      BROKER_ENCRYPTION_KEY: randomUUID() + randomUUID(),
      ...(usersFile ? { BROKER_USERS_FILE: usersFile } : {}),
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
      throw new Error(`broker exited during start-up (${JSON.stringify(exited)}); log: ${logFile}\n${tail(logFile)}`);
    }
    if (fs.existsSync(caFile)) {
      try {
        const res = await request(`${url}/healthz`, { ca: fs.readFileSync(caFile), timeout: 2000 });
        if (res.status === 200) {
          return { url, identityUrl, username, password, dataDir, caFile, pid: child.pid, stop };
        }
        lastError = `GET /healthz → ${res.status} ${res.text}`;
      } catch (err) {
        lastError = err.message;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`broker not healthy after ${timeoutMs} ms (${lastError}); log: ${logFile}\n${tail(logFile)}`);
}

/** Returns the last lines of a file, for error messages. */
export function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/**
 * A small HTTPS client on node:https (the same stack the libraries use, so
 * NODE_EXTRA_CA_CERTS applies). Never follows redirects.
 *
 * @param {string|URL} url
 * @param {{method?: string, headers?: object, body?: string|object, form?: object,
 *          ca?: Buffer, cert?: string, key?: string, timeout?: number}} [opts]
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
  const agentOptions = {};
  for (const k of ['ca', 'cert', 'key']) if (opts[k]) agentOptions[k] = opts[k];
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: opts.method ?? 'GET',
      headers,
      // A fresh agent per request: no connection (or TLS session) is reused
      // between requests with different client certificates.
      agent: new https.Agent({ ...agentOptions, keepAlive: false }),
      timeout: opts.timeout ?? 10_000,
    }, (res) => {
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

/**
 * Records the HTTPS requests this process sends until restore() is called,
 * by wrapping https.request. xssec calls https.request(url, options, cb)
 * with the headers in options.headers and the form in options.data, so the
 * requests a library sends (identity.md §8 checks 6, 7, 11, 16) can be
 * checked without a proxy in front of the broker. The library itself is not
 * changed; only the outgoing call is observed.
 *
 * @returns {{requests: Array<{url: URL, method: string, headers: object, form: URLSearchParams, agent: any}>,
 *            restore: () => void}}
 */
export function recordRequests() {
  const original = https.request;
  const requests = [];
  https.request = function recordingRequest(...args) {
    const [first, second] = args;
    const options = (typeof first === 'string' || first instanceof URL) ? (second ?? {}) : (first ?? {});
    let url;
    try { url = new URL(typeof first === 'string' || first instanceof URL ? first : `https://${options.host}${options.path ?? '/'}`); } catch { url = undefined; }
    const headers = {};
    for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
    requests.push({
      url,
      method: (options.method ?? 'GET').toUpperCase(),
      headers,
      form: new URLSearchParams(typeof options.data === 'string' ? options.data : ''),
      agent: options.agent,
    });
    return original.apply(this, args);
  };
  return {
    requests,
    restore() { https.request = original; },
  };
}

// ---------------------------------------------------------------------------
// Test side
// ---------------------------------------------------------------------------

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the suite with "npm test" (compat/run.mjs), which starts the broker first`);
  }
  return v;
}

/** The running broker, as passed on by run.mjs. */
export const broker = {
  get url() { return env('COMPAT_BROKER_URL'); },
  /** The identity host (BROKER_IDENTITY_URL) on the same listener. */
  get identityUrl() { return env('COMPAT_BROKER_IDENTITY_URL'); },
  get username() { return env('COMPAT_BROKER_USERNAME'); },
  get password() { return env('COMPAT_BROKER_PASSWORD'); },
  get dataDir() { return env('COMPAT_BROKER_DATA_DIR'); },
  get caFile() { return path.join(env('COMPAT_BROKER_DATA_DIR'), 'ca.pem'); },
};

/**
 * Calls the broker's OSB API with Basic auth and X-Broker-API-Version 2.15.
 * @param {string} method
 * @param {string} pathAndQuery path below the broker URL, e.g. /v2/catalog
 * @param {object} [body]
 */
export async function osb(method, pathAndQuery, body) {
  const auth = Buffer.from(`${broker.username}:${broker.password}`).toString('base64');
  return request(broker.url + pathAndQuery, {
    method,
    headers: { authorization: `Basic ${auth}`, 'x-broker-api-version': '2.15', accept: 'application/json' },
    body,
  });
}

let catalogPromise;

/**
 * An offering and its application plan from GET /v2/catalog (fetched once).
 * @param {'xsuaa'|'identity'} offering
 * @returns {Promise<{service: object, plan: object}>}
 */
export async function catalog(offering) {
  catalogPromise ??= (async () => {
    const res = await osb('GET', '/v2/catalog');
    if (res.status !== 200) throw new Error(`GET /v2/catalog → ${res.status} ${res.text}`);
    return res.json.services;
  })();
  const service = (await catalogPromise).find((s) => s.name === offering);
  if (!service) throw new Error(`catalog has no ${offering} offering`);
  const plan = service.plans.find((p) => p.name === 'application');
  if (!plan) throw new Error(`${offering} offering has no application plan`);
  return { service, plan };
}

/**
 * The xsuaa offering and its application plan from GET /v2/catalog.
 * @returns {Promise<{service: object, plan: object}>}
 */
export async function xsuaaCatalog() {
  return catalog('xsuaa');
}

/**
 * The identity offering and its application plan from GET /v2/catalog.
 * @returns {Promise<{service: object, plan: object}>}
 */
export async function identityCatalog() {
  return catalog('identity');
}

async function pollLastOperation(pathPrefix, operation, query) {
  for (let i = 0; i < 600; i++) {
    const q = new URLSearchParams(query);
    if (operation) q.set('operation', operation);
    const res = await osb('GET', `${pathPrefix}/last_operation?${q}`);
    if (res.status === 410) return { state: 'gone' };
    if (res.status !== 200) throw new Error(`GET ${pathPrefix}/last_operation → ${res.status} ${res.text}`);
    if (res.json.state !== 'in progress') return res.json;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${pathPrefix}: operation still in progress`);
}

/**
 * A set of OSB resources created by one test file, removed again by
 * cleanup() (registered with after() by newWorkspace()).
 */
export class Workspace {
  constructor() {
    this.orgGuid = randomUUID();
    this.spaceGuid = randomUUID();
    /** @type {Map<string, {name: string, offering: string, bindings: Set<string>}>} */
    this.instances = new Map();
  }

  /** The catalog entry of an instance this workspace created. */
  async catalogOf(instanceId) {
    return catalog(this.instances.get(instanceId)?.offering ?? 'xsuaa');
  }

  /**
   * Provisions an application-plan instance: of xsuaa (params as
   * xs-security.json) unless opts.offering is 'identity' (params as
   * identity.md §2.1). Resolves with the raw response; throws unless
   * expectStatus matches (default: 200/201, or 202 followed by a successful
   * last_operation).
   * @param {object|undefined} params
   * @param {{name?: string, id?: string, offering?: 'xsuaa'|'identity', expectStatus?: number}} [opts]
   */
  async provision(params, opts = {}) {
    const offering = opts.offering ?? 'xsuaa';
    const { service, plan } = await catalog(offering);
    const id = opts.id ?? randomUUID();
    const name = opts.name ?? `compat-${id.slice(0, 8)}`;
    const body = {
      service_id: service.id,
      plan_id: plan.id,
      organization_guid: this.orgGuid,
      space_guid: this.spaceGuid,
      context: {
        platform: 'cloudfoundry',
        instance_name: name,
        space_guid: this.spaceGuid,
        organization_guid: this.orgGuid,
      },
    };
    if (params !== undefined) body.parameters = params;
    const res = await osb('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, body);
    if (opts.expectStatus !== undefined) {
      if (res.status !== opts.expectStatus) {
        throw new Error(`provision ${name}: expected ${opts.expectStatus}, got ${res.status} ${res.text}`);
      }
      if (res.status < 300) this.instances.set(id, { name, offering, bindings: new Set() });
      return { id, name, res };
    }
    if (res.status === 202) {
      const op = await pollLastOperation(`/v2/service_instances/${id}`, res.json?.operation, {
        service_id: service.id, plan_id: plan.id,
      });
      if (op.state !== 'succeeded') throw new Error(`provision ${name}: ${JSON.stringify(op)}`);
    } else if (res.status !== 201 && res.status !== 200) {
      throw new Error(`provision ${name} → ${res.status} ${res.text}`);
    }
    this.instances.set(id, { name, offering, bindings: new Set() });
    return { id, name, res };
  }

  /**
   * Updates an instance with a complete new descriptor (PATCH).
   * @param {string} id
   * @param {object} params
   */
  async update(id, params) {
    const { service, plan } = await this.catalogOf(id);
    const res = await osb('PATCH', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      service_id: service.id,
      plan_id: plan.id,
      parameters: params,
      previous_values: { service_id: service.id, plan_id: plan.id },
      context: {
        platform: 'cloudfoundry',
        instance_name: this.instances.get(id)?.name,
        space_guid: this.spaceGuid,
        organization_guid: this.orgGuid,
      },
    });
    if (res.status === 202) {
      const op = await pollLastOperation(`/v2/service_instances/${id}`, res.json?.operation, {
        service_id: service.id, plan_id: plan.id,
      });
      if (op.state !== 'succeeded') throw new Error(`update ${id}: ${JSON.stringify(op)}`);
    } else if (res.status !== 200) {
      throw new Error(`update ${id} → ${res.status} ${res.text}`);
    }
    return res;
  }

  /**
   * Binds to an instance and returns the credentials. With
   * opts.expectStatus the raw response is returned instead (and nothing is
   * thrown) when the status matches.
   * @param {string} instanceId
   * @param {object} [params] binding parameters
   * @param {{expectStatus?: number}} [opts]
   * @returns {Promise<{bindingId: string, credentials: object, res: object}>}
   */
  async bind(instanceId, params, opts = {}) {
    const { service, plan } = await this.catalogOf(instanceId);
    const bindingId = randomUUID();
    const appGuid = randomUUID();
    const body = {
      service_id: service.id,
      plan_id: plan.id,
      app_guid: appGuid,
      bind_resource: { app_guid: appGuid, space_guid: this.spaceGuid },
      context: { platform: 'cloudfoundry', organization_guid: this.orgGuid, space_guid: this.spaceGuid },
    };
    if (params !== undefined) body.parameters = params;
    const p = `/v2/service_instances/${instanceId}/service_bindings/${bindingId}`;
    const res = await osb('PUT', `${p}?accepts_incomplete=true`, body);
    if (opts.expectStatus !== undefined) {
      if (res.status !== opts.expectStatus) {
        throw new Error(`bind ${instanceId}: expected ${opts.expectStatus}, got ${res.status} ${res.text}`);
      }
      if (res.status < 300) this.instances.get(instanceId)?.bindings.add(bindingId);
      return { bindingId, credentials: res.json?.credentials, res };
    }
    let credentials;
    if (res.status === 202) {
      const op = await pollLastOperation(p, res.json?.operation, { service_id: service.id, plan_id: plan.id });
      if (op.state !== 'succeeded') throw new Error(`bind ${instanceId}: ${JSON.stringify(op)}`);
      const got = await osb('GET', `${p}?service_id=${service.id}&plan_id=${plan.id}`);
      if (got.status !== 200) throw new Error(`GET binding → ${got.status} ${got.text}`);
      credentials = got.json.credentials;
    } else if (res.status === 201 || res.status === 200) {
      credentials = res.json.credentials;
    } else {
      throw new Error(`bind ${instanceId} → ${res.status} ${res.text}`);
    }
    this.instances.get(instanceId)?.bindings.add(bindingId);
    return { bindingId, credentials, res };
  }

  /** Deletes a binding; resolves with the final HTTP status (200 or 410). */
  async unbind(instanceId, bindingId) {
    const { service, plan } = await this.catalogOf(instanceId);
    const p = `/v2/service_instances/${instanceId}/service_bindings/${bindingId}`;
    const res = await osb('DELETE', `${p}?service_id=${service.id}&plan_id=${plan.id}&accepts_incomplete=true`);
    let status = res.status;
    if (status === 202) {
      const op = await pollLastOperation(p, res.json?.operation, { service_id: service.id, plan_id: plan.id });
      if (op.state !== 'succeeded' && op.state !== 'gone') throw new Error(`unbind: ${JSON.stringify(op)}`);
      status = 200;
    }
    if (status !== 200 && status !== 410) throw new Error(`unbind ${bindingId} → ${res.status} ${res.text}`);
    this.instances.get(instanceId)?.bindings.delete(bindingId);
    return status;
  }

  /** Deletes an instance (its bindings first); resolves with 200 or 410. */
  async deprovision(instanceId) {
    const { service, plan } = await this.catalogOf(instanceId);
    for (const b of [...(this.instances.get(instanceId)?.bindings ?? [])]) {
      await this.unbind(instanceId, b);
    }
    const p = `/v2/service_instances/${instanceId}`;
    const res = await osb('DELETE', `${p}?service_id=${service.id}&plan_id=${plan.id}&accepts_incomplete=true`);
    let status = res.status;
    if (status === 202) {
      const op = await pollLastOperation(p, res.json?.operation, { service_id: service.id, plan_id: plan.id });
      if (op.state !== 'succeeded' && op.state !== 'gone') throw new Error(`deprovision: ${JSON.stringify(op)}`);
      status = 200;
    }
    if (status !== 200 && status !== 410) throw new Error(`deprovision ${instanceId} → ${res.status} ${res.text}`);
    this.instances.delete(instanceId);
    return status;
  }

  /** Removes everything this workspace still holds, newest instance first. */
  async cleanup() {
    const errors = [];
    for (const id of [...this.instances.keys()].reverse()) {
      try {
        await this.deprovision(id);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw new AggregateError(errors, 'cleanup failed');
  }
}

/** A Workspace whose resources are removed in the file's after() hook. */
export function newWorkspace() {
  const ws = new Workspace();
  after(() => ws.cleanup());
  return ws;
}

// ---------------------------------------------------------------------------
// JWT helpers (decoding only; the libraries do all validation)
// ---------------------------------------------------------------------------

/** Decodes a JWT without verifying it. */
export function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

/**
 * Re-encodes a JWT with a changed header and/or payload but the original
 * signature (for negative validation tests).
 */
export function tamperJwt(jwt, { header, payload }) {
  const [h, p, s] = jwt.split('.');
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const dec = decodeJwt(jwt);
  return [
    header ? enc(header(dec.header)) : h,
    payload ? enc(payload(dec.payload)) : p,
    s,
  ].join('.');
}

// ---------------------------------------------------------------------------
// A self-signed client certificate (for "certificate not issued by the
// broker" checks), built with a minimal DER encoder so no openssl is needed.
// ---------------------------------------------------------------------------

function derLength(n) {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag, ...content) {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

function utcTime(d) {
  const p = (n) => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`
    + `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return der(0x17, Buffer.from(s, 'ascii'));
}

/**
 * Creates a self-signed RSA certificate with subject and issuer CN=cn.
 * @param {string} cn
 * @returns {{cert: string, key: string}} PEM certificate and PKCS#8 key
 */
export function selfSignedCertificate(cn) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const sha256WithRSA = der(0x30, der(0x06, Buffer.from('2a864886f70d01010b', 'hex')), Buffer.from([0x05, 0x00]));
  const name = der(0x30, der(0x31, der(0x30, der(0x06, Buffer.from('550403', 'hex')), der(0x0c, Buffer.from(cn, 'utf8')))));
  // A positive INTEGER in minimal DER: the first byte must be neither
  // negative (top bit) nor a redundant 0x00. Go's parser refuses a
  // non-minimal serial and its TLS server then drops the handshake, so a
  // serial starting 0x00 0x0N... (1 run in 256) failed the x509 tests.
  const serial = randomBytes(8);
  serial[0] = (serial[0] & 0x3f) | 0x40;
  const now = Date.now();
  const tbs = der(0x30,
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    sha256WithRSA,
    name,
    der(0x30, utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }));
  const signature = sign('sha256', tbs, privateKey);
  const cert = der(0x30, tbs, sha256WithRSA, der(0x03, Buffer.from([0]), signature));
  const b64 = cert.toString('base64').match(/.{1,64}/g).join('\n');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
  };
}
