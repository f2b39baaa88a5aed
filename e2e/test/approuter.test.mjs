// @sap/approuter 23 in front of a tiny backend, logged in through the
// broker's form in Chromium (xsuaa.md §6, §9.4, §10 checks 12 and 14;
// sap-clients.md §3–§5, §9).
//
// Approuter runs unmodified on Node 22 with lib/token-spy.cjs preloaded, which
// records what approuter sends to <url>/oauth/token, so the wire format
// (code_verifier, client authentication) can be checked.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  approuterDescriptor, bearerTokens, spyEntries, startApprouter, startBackend, submitLogin,
} from '../lib/approuter.mjs';
import { decodeJwt, fingerprint, launchBrowser, provisionAndBind, request, s256, show, users } from '../lib/harness.mjs';

const instanceName = 'e2e-approuter-uaa';

describe('approuter login through the broker in Chromium', () => {
  let creds;
  let backend;
  let approuter;
  let browser;
  let page;
  const authorizeRequests = [];

  before(async () => {
    let vcapServices;
    ({ credentials: creds, vcapServices } = await provisionAndBind({
      instanceName, xsSecurity: approuterDescriptor('bookshop_ui', 'Approuter Viewer'),
    }));
    backend = await startBackend();
    approuter = await startApprouter('approuter', { vcapServices, backendUrl: backend.url });
    browser = await launchBrowser('approuter');
    ({ page } = browser);
    page.on('request', (r) => {
      if (r.url().startsWith(`${creds.url}/oauth/authorize`)) authorizeRequests.push(new URL(r.url()));
    });
  });

  async function onLoginPage() {
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin, `on the broker's login page, not ${page.url()}`);
    assert.match(await page.title(), new RegExp(instanceName));
    assert.ok(await page.locator('input[name="password"]').isVisible());
  }

  test('a browser request to a protected route gets a plain 302 to /oauth/authorize with state and PKCE (check 12)', async () => {
    const res = await request(`${approuter.base}/api/hello`, {
      headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) e2e', accept: 'text/html' },
    });
    assert.equal(res.status, 302, show(res));
    const loc = new URL(res.headers.location);
    assert.equal(`${loc.origin}${loc.pathname}`, `${creds.url}/oauth/authorize`);
    assert.equal(loc.searchParams.get('response_type'), 'code');
    assert.equal(loc.searchParams.get('client_id'), creds.clientid);
    assert.equal(loc.searchParams.get('redirect_uri'), `${approuter.base}/login/callback`);
    assert.ok(loc.searchParams.get('state'), 'state');
    assert.match(loc.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(loc.searchParams.get('code_challenge_method'), 'S256');
  });

  test('alice logs in on the broker form; the Display route answers 200 with her token forwarded (check 12, J12)', async () => {
    await page.goto(`${approuter.base}/api/hello`);
    await onLoginPage();
    const res = await submitLogin(browser, users.alice, `${approuter.base}/api/hello`);
    assert.equal(res.status(), 200, await res.text());
    assert.deepEqual(await res.json(), { path: '/hello', user: users.alice.username });

    const tokens = bearerTokens(backend);
    assert.equal(tokens.length, 1);
    const jwt = decodeJwt(tokens[0]);
    assert.equal(jwt.user_name, users.alice.username);
    assert.ok(jwt.scope.includes(`${creds.xsappname}.Display`));
    assert.equal(jwt.grant_type, 'authorization_code');
    assert.equal(jwt.azp, creds.clientid);

    // What approuter sent to the token endpoint (T1, T3, T9).
    const spy = spyEntries(approuter.spyFile);
    assert.equal(spy.length, 1, JSON.stringify(spy));
    const [exchange] = spy;
    assert.equal(exchange.grant_type, 'authorization_code');
    assert.equal(exchange.status, 200);
    assert.equal(exchange.client_auth, 'body');
    assert.equal(exchange.redirect_uri, `${approuter.base}/login/callback`);
    assert.ok(exchange.code_verifier, 'the token request carried code_verifier');
    assert.equal(s256(exchange.code_verifier), authorizeRequests.at(-1).searchParams.get('code_challenge'),
      'the verifier matches the challenge of the authorize request the browser sent');
    assert.equal(exchange.response_access_token, fingerprint(tokens[0]), 'the backend got exactly the token from the token response');
    for (const k of ['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']) {
      assert.ok(exchange.response_keys.includes(k), `token response has ${k}`);
    }
  });

  test('logout goes to <url>/logout.do with redirect and client_id, and the broker sends the browser back (check 14)', async () => {
    const res = await page.goto(`${approuter.base}/do/logout`);
    assert.equal(page.url(), `${approuter.base}/logout-page.html`);
    assert.equal(res.status(), 200);
    assert.match(await page.locator('#logged-out').innerText(), /signed out/);
    const chain = [];
    for (let r = res.request(); r; r = r.redirectedFrom()) chain.unshift(r.url());
    assert.equal(chain.length, 3, JSON.stringify(chain));
    assert.equal(chain[0], `${approuter.base}/do/logout`);
    const logout = new URL(chain[1]);
    assert.equal(`${logout.origin}${logout.pathname}`, `${creds.url}/logout.do`);
    assert.equal(logout.searchParams.get('redirect'), `${approuter.base}/logout-page.html`);
    assert.equal(logout.searchParams.get('client_id'), creds.clientid);
    assert.equal(chain[2], `${approuter.base}/logout-page.html`);
  });

  test('after logout the form is shown again; bob (no role collection) gets 403 (check 12)', async () => {
    const requestsBefore = backend.requests.length;
    await page.goto(`${approuter.base}/api/hello`);
    // The broker's SSO session ended with the logout: the form, not a silent login.
    await onLoginPage();
    const res = await submitLogin(browser, users.bob, `${approuter.base}/api/hello`);
    assert.equal(res.status(), 403, await res.text());
    assert.equal(backend.requests.length, requestsBefore, 'the backend was not called');
    const last = spyEntries(approuter.spyFile).at(-1);
    assert.equal(last.grant_type, 'authorization_code');
    assert.equal(last.status, 200);
    assert.equal(s256(last.code_verifier), authorizeRequests.at(-1).searchParams.get('code_challenge'));
    assert.deepEqual(last.response_scope.split(' '), ['openid'], 'bob holds no Display scope');
  });
});
