// Approuter's JWT refresh against the broker (xsuaa.md §3.3, §10 check 15;
// sap-clients.md §3 T1, T5): approuter refreshes the login token with the
// refresh_token grant, HTTP Basic client authentication and an empty
// app_tid=, and forwards the new token to the backend.
//
// Approuter (default, sticky session mode) schedules the refresh JWT_REFRESH
// minutes before the login expires, and counts a login with expires_in > 180 s
// as expiring 120 s early. With the broker's shortest token validity (300 s)
// and JWT_REFRESH=2 the refresh comes about 60 s after the login: this file
// waits for that event (it runs in parallel with the other files).

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  approuterDescriptor, bearerTokens, spyEntries, startApprouter, startBackend, submitLogin,
} from '../lib/approuter.mjs';
import { decodeJwt, fingerprint, launchBrowser, provisionAndBind, users } from '../lib/harness.mjs';

describe('approuter JWT refresh through the broker', () => {
  let creds;
  let backend;
  let approuter;
  let browser;
  let page;

  before(async () => {
    let vcapServices;
    ({ credentials: creds, vcapServices } = await provisionAndBind({
      instanceName: 'e2e-refresh-uaa', xsSecurity: approuterDescriptor('bookshop_refresh', 'Refresh Viewer'),
    }));
    backend = await startBackend();
    approuter = await startApprouter('approuter-refresh', {
      vcapServices, backendUrl: backend.url, extraEnv: { JWT_REFRESH: '2' },
    });
    browser = await launchBrowser('refresh');
    ({ page } = browser);
  });

  let loginToken;
  test('alice logs in through approuter', async () => {
    await page.goto(`${approuter.base}/api/hello`);
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin, 'on the broker login page');
    const res = await submitLogin(browser, users.alice, `${approuter.base}/api/hello`);
    assert.equal(res.status(), 200, await res.text());
    [loginToken] = bearerTokens(backend);
    assert.ok(loginToken);
    const [exchange] = spyEntries(approuter.spyFile);
    assert.equal(exchange.grant_type, 'authorization_code');
    assert.equal(exchange.status, 200);
    assert.ok(exchange.response_refresh_token, 'the code exchange returned a refresh_token');
    assert.ok(exchange.response_expires_in > 180 && exchange.response_expires_in <= 300, `expires_in ${exchange.response_expires_in}`);
  });

  test('approuter refreshes with Basic auth and app_tid=; the broker answers 200 with a rotated refresh token (check 15)', async () => {
    assert.ok(loginToken, 'needs the login of the previous test');
    // Wait for approuter's scheduled refresh (about 60 s after the login).
    const deadline = Date.now() + 100_000;
    let refresh;
    while (!refresh && Date.now() < deadline) {
      refresh = spyEntries(approuter.spyFile).find((e) => e.grant_type === 'refresh_token');
      if (!refresh) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(refresh, `approuter sent no refresh_token request; its log:\n${approuter.log()}`);
    const [exchange] = spyEntries(approuter.spyFile);
    assert.equal(refresh.status, 200, JSON.stringify(refresh));
    assert.equal(refresh.client_auth, 'basic');
    assert.equal(refresh.basic_user, creds.clientid);
    assert.equal(refresh.app_tid, '', 'approuter sends an empty app_tid=');
    assert.equal(refresh.refresh_token, exchange.response_refresh_token, 'the refresh token of the login');
    for (const k of ['access_token', 'expires_in', 'refresh_token']) {
      assert.ok(refresh.response_keys.includes(k), `refresh response has ${k} (T5)`);
    }
    assert.notEqual(refresh.response_refresh_token, refresh.refresh_token, 'the refresh token rotates');

    // The next request forwards the refreshed token, which keeps the
    // original grant type, user and scopes.
    const res = await page.goto(`${approuter.base}/api/hello`);
    assert.equal(res.status(), 200);
    const last = bearerTokens(backend).at(-1);
    assert.equal(fingerprint(last), refresh.response_access_token);
    const before = decodeJwt(loginToken);
    const jwt = decodeJwt(last);
    assert.notEqual(jwt.jti, before.jti);
    assert.equal(jwt.user_name, users.alice.username);
    assert.equal(jwt.grant_type, 'authorization_code');
    assert.deepEqual([...jwt.scope].sort(), [...before.scope].sort());
    assert.ok(jwt.exp > before.exp, 'a later expiry');
  });
});
