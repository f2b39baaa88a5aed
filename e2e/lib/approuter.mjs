// Starting @sap/approuter (unmodified, on Node 22) for the tests, with
// lib/token-spy.cjs preloaded to record its token requests.

import fs from 'node:fs';
import path from 'node:path';

import { decodeJwt, e2eRoot, explained, freePort, node22, run, startChild, startRecorder, waitFor } from './harness.mjs';

/**
 * The xs-security.json of the approuter tests: one scope, a role template
 * and a role collection that alice holds (fixtures/users.yaml).
 * @param {string} xsappname
 * @param {string} roleCollection
 */
export function approuterDescriptor(xsappname, roleCollection) {
  return {
    xsappname,
    'tenant-mode': 'dedicated',
    scopes: [{ name: '$XSAPPNAME.Display', description: 'display' }],
    'role-templates': [{ name: 'Viewer', 'scope-references': ['$XSAPPNAME.Display'] }],
    'role-collections': [{ name: roleCollection, 'role-template-references': ['$XSAPPNAME.Viewer'] }],
    'oauth2-configuration': {
      'redirect-uris': ['http://localhost:*/**', 'http://127.0.0.1:*/**'],
      // The shortest validity the broker allows (xs-security.json minimum).
      'token-validity': 300,
    },
  };
}

/** Reads the token spy's JSON lines (lib/token-spy.cjs). */
export function spyEntries(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/**
 * A backend that answers every request with JSON naming the path and the
 * user of the forwarded token; its requests are recorded.
 */
export function startBackend() {
  return startRecorder((req) => ({
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      path: req.url,
      user: req.headers.authorization ? decodeJwt(req.headers.authorization.slice(7)).user_name : null,
    }),
  }));
}

/** The bearer tokens a backend received, in order. */
export function bearerTokens(backend) {
  return backend.requests
    .map((r) => r.headers.authorization)
    .filter(Boolean)
    .map((h) => h.replace(/^Bearer /, ''));
}

/**
 * Starts approuter (approuter/xs-app.json) on a free port with the binding
 * in VCAP_SERVICES and destination "backend" (forwardAuthToken).
 * @param {string} name
 * @param {{vcapServices: string, backendUrl: string, extraEnv?: object}} opts
 */
export async function startApprouter(name, { vcapServices, backendUrl, extraEnv = {} }) {
  const port = await freePort();
  const spyFile = path.join(run.tmp, `${name}-token-requests.jsonl`);
  const env = {
    ...process.env,
    PORT: String(port),
    VCAP_SERVICES: vcapServices,
    destinations: JSON.stringify([{ name: 'backend', url: backendUrl, forwardAuthToken: true }]),
    PRESERVE_FRAGMENT: 'false',
    E2E_TOKEN_SPY_FILE: spyFile,
    ...extraEnv,
  };
  const proc = startChild(name, node22, [
    '-r', path.join(e2eRoot, 'lib', 'token-spy.cjs'),
    path.join(e2eRoot, 'node_modules', '@sap', 'approuter', 'approuter.js'),
  ], { cwd: path.join(e2eRoot, 'approuter'), env });
  await waitFor(`http://127.0.0.1:${port}/logout-page.html`, (r) => r.status === 200, { alive: proc.alive, describe: proc.log });
  return { ...proc, port, base: `http://localhost:${port}`, spyFile };
}

/**
 * On the broker's login page: fills in the user and submits, and returns
 * the response of the navigation that ends at expectedUrl.
 * @param {{page: import('playwright-core').Page, diagnostics: () => string}} browser from launchBrowser
 * @param {{username: string, password: string}} user
 * @param {string} expectedUrl
 */
export async function submitLogin({ page, diagnostics }, user, expectedUrl) {
  await page.fill('input[name="username"]', user.username);
  await page.fill('input[name="password"]', user.password);
  const [res] = await Promise.all([
    explained(page.waitForNavigation({ url: expectedUrl }), diagnostics),
    page.click('button[type="submit"]'),
  ]);
  return res;
}
